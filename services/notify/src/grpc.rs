//! The gRPC face of notify: the inbox, for the gateway.

use domain::types::Invalid;
use eventlog::{EventStore, ExpectedVersion, NewEvent, StreamAppend};
use samskab_proto::notify::v1::{self as pb, notify_service_server::NotifyService};
use servicekit::ServiceError;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use std::collections::BTreeMap;

use servicekit::ErrorCode;

use crate::inbox::{self, Entry};
use crate::notices::{self, Facts, Language, NoticeDecided, NoticeRead, Secret, channel, kind};
use crate::people::{
    self, CHANNELS, ContactConfirmationFailed, ContactConfirmed, ContactDetailsSet, NotificationPreferencesSet,
    Preferences, QuietHours,
};

/// Pages hold at most this many notices.
pub const MAX_PAGE: u32 = 500;

/// The service's handlers.
#[derive(Clone)]
pub struct Notify {
    pub(crate) store: EventStore,
    pub(crate) keys: keystore::KeyStore,
    pub(crate) pusher: crate::push::Pusher,
}

fn recipients(list: &[String]) -> Result<Vec<String>, ServiceError> {
    let ok = |r: &String| {
        r.split_once(':').is_some_and(|(k, id)| ["person", "pilot"].contains(&k) && !id.is_empty() && id.len() <= 200)
    };
    if list.is_empty() || list.len() > 16 || !list.iter().all(ok) {
        return Err(ServiceError::Invalid(vec![Invalid::new(
            "/recipients",
            "1 to 16 of `person:<id>` or `pilot:<id>`",
        )]));
    }
    Ok(list.to_vec())
}

fn to_proto(e: &Entry, lang: Option<Language>) -> pb::Notice {
    let lang = lang.unwrap_or_else(|| Language::default_for(&e.facts));
    let (title, body) = notices::words(&e.kind, &e.facts, lang);
    pb::Notice {
        notice_id: e.notice_id.to_string(),
        kind: e.kind.clone(),
        created_at: Some(samskab_proto::time::to_proto(e.created_at)),
        read_at: e.read_at.map(samskab_proto::time::to_proto),
        title,
        body,
        ride_id: e.facts.ride_id.map(|r| r.to_string()).unwrap_or_default(),
        ride_request_id: e.facts.ride_request_id.map(|r| r.to_string()).unwrap_or_default(),
        seq: e.seq.max(0) as u64,
    }
}

/// The language `recipient` chose, if any.
async fn chosen_language(store: &EventStore, recipient: &str) -> Result<Option<Language>, ServiceError> {
    let prefs = people::preferences(store, recipient).await.map_err(ServiceError::from)?;
    Ok(prefs.and_then(|p| p.language).as_deref().and_then(Language::parse))
}

/// The inbox's calls.
struct Inbox;

impl Inbox {
    async fn list_notices(
        n: &Notify,
        req: Request<pb::ListNoticesRequest>,
    ) -> Result<Response<pb::NoticePage>, Status> {
        let r = req.into_inner();
        let who = recipients(&r.recipients)?;
        let limit = if r.limit == 0 { 50 } else { r.limit.min(MAX_PAGE) } as usize;
        let lang = match Language::parse(&r.language) {
            Some(l) => Some(l),
            None => chosen_language(&n.store, &who[0]).await?,
        };
        let head_seq = inbox::head_seq(&n.store, &who).await.map_err(ServiceError::from)?;
        if r.follow {
            let after = i64::try_from(r.after_seq)
                .map_err(|_| ServiceError::Invalid(vec![Invalid::new("/after_seq", "out of range")]))?;
            let new = inbox::since(&n.store, &who, after, limit).await.map_err(ServiceError::from)?;
            let notices = new.iter().map(|e| to_proto(e, lang)).collect();
            return Ok(Response::new(pb::NoticePage { notices, next_cursor: String::new(), head_seq }));
        }
        let after = if r.cursor.is_empty() {
            None
        } else {
            Some(
                inbox::parse_cursor(&r.cursor)
                    .ok_or_else(|| ServiceError::Invalid(vec![Invalid::new("/cursor", "not a cursor of this list")]))?,
            )
        };
        let page = inbox::page(&n.store, &who, after, limit, r.unread_only).await.map_err(ServiceError::from)?;
        let next_cursor =
            if page.len() == limit { page.last().map(inbox::cursor_of).unwrap_or_default() } else { String::new() };
        let notices = page.iter().map(|e| to_proto(e, lang)).collect();
        Ok(Response::new(pb::NoticePage { notices, next_cursor, head_seq }))
    }

    async fn mark_notice_read(
        n: &Notify,
        req: Request<pb::MarkNoticeReadRequest>,
    ) -> Result<Response<pb::Notice>, Status> {
        let r = req.into_inner();
        let who = recipients(&r.recipients)?;
        let id: Uuid = r
            .notice_id
            .parse()
            .map_err(|_| ServiceError::Invalid(vec![Invalid::new("/notice_id", "must be a UUID")]))?;
        let lang = Language::parse(&r.language);
        let not_found = || ServiceError::NotFound("notice".into());
        let mut entry = inbox::get(&n.store, &who, id).await.map_err(ServiceError::from)?.ok_or_else(not_found)?;
        if entry.read_at.is_some() {
            return Ok(Response::new(to_proto(&entry, lang)));
        }
        // Microseconds, as the inbox keeps times: every answer tells the same time.
        let at = chrono::SubsecRound::trunc_subsecs(servicekit::clock::now(), 6);
        let event = NewEvent::new("NoticeRead", &NoticeRead { notice_id: id, at }).map_err(ServiceError::from)?;
        // Version 1 is the decision: the first reader's time stays.
        let stream = notices::stream(id);
        match n.store.append(vec![StreamAppend::new(stream.clone(), ExpectedVersion::Exact(1), vec![event])]).await {
            Ok(_) => entry.read_at = Some(at),
            Err(eventlog::Error::WrongExpectedVersion { .. }) => {
                let read = n.store.read_stream(&stream, 1, 1).await.map_err(ServiceError::from)?;
                let first = read.first().and_then(|e| e.payload_as::<NoticeRead>().ok());
                entry.read_at = Some(first.map_or(at, |r| r.at));
            }
            Err(e) => return Err(ServiceError::from(e).into()),
        }
        Ok(Response::new(to_proto(&entry, lang)))
    }
}

/// How many wrong codes lock a pending address.
pub const MAX_TRIES: u32 = 5;
/// How long a confirmation code holds.
pub const CODE_VALID_HOURS: i64 = 24;

pub(crate) fn person_recipient(r: &str) -> Result<String, ServiceError> {
    match r.strip_prefix("person:").map(str::parse::<Uuid>) {
        Some(Ok(id)) => Ok(format!("person:{id}")),
        _ => Err(ServiceError::invalid("/recipient", "must be `person:<uuid>`")),
    }
}

fn hh_mm(field: &str, s: &str) -> Result<chrono::NaiveTime, ServiceError> {
    chrono::NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| ServiceError::invalid(field, "must be HH:MM"))
}

/// Checks a preferences document: every named field that is wrong is reported.
fn checked(p: Option<pb::Preferences>) -> Result<Preferences, ServiceError> {
    let p = p.unwrap_or_default();
    let mut bad = Vec::new();
    let language = match p.language.as_str() {
        "" => None,
        "da" | "en" => Some(p.language.clone()),
        _ => {
            bad.push(Invalid::new("/language", "must be `da` or `en`"));
            None
        }
    };
    let quiet_hours = match p.quiet_hours {
        None => None,
        Some(q) => {
            let from = hh_mm("/quiet_hours/from", &q.from);
            let to = hh_mm("/quiet_hours/to", &q.to);
            match (&from, &to) {
                (Ok(f), Ok(t)) if f == t => bad.push(Invalid::new("/quiet_hours/to", "must differ from `from`")),
                _ => {}
            }
            for r in [from, to] {
                if let Err(ServiceError::Invalid(v)) = r {
                    bad.extend(v);
                }
            }
            if !q.timezone.is_empty() && q.timezone.parse::<chrono_tz::Tz>().is_err() {
                bad.push(Invalid::new("/quiet_hours/timezone", "not an IANA time zone"));
            }
            Some(QuietHours { from: q.from, to: q.to, timezone: q.timezone })
        }
    };
    let mut channels = BTreeMap::new();
    for (kind, list) in p.channels {
        if !notices::kind::ALL.contains(&kind.as_str()) {
            bad.push(Invalid::new(format!("/channels/{kind}"), "not a kind of notice"));
            continue;
        }
        let mut seen = Vec::new();
        for c in list.channels {
            if !CHANNELS.contains(&c.as_str()) || seen.contains(&c) {
                bad.push(Invalid::new(format!("/channels/{kind}"), "`email`, `sms` or `push`, each once"));
                break;
            }
            seen.push(c);
        }
        channels.insert(kind, seen);
    }
    if !bad.is_empty() {
        return Err(ServiceError::Invalid(bad));
    }
    Ok(Preferences { language, quiet_hours, channels })
}

fn view_of(p: &Preferences, default_language: &str) -> pb::PreferencesView {
    let language = p.language.clone().unwrap_or_else(|| if default_language == "da" { "da" } else { "en" }.into());
    pb::PreferencesView {
        language,
        quiet_hours: p.quiet_hours.as_ref().map(|q| pb::QuietHours {
            from: q.from.clone(),
            to: q.to.clone(),
            timezone: q.timezone.clone(),
        }),
        channels: p.effective().into_iter().map(|(k, v)| (k, pb::ChannelList { channels: v })).collect(),
    }
}

impl Notify {
    /// Runs `f` on the recipient's state and appends what it returns, again on a race.
    async fn change<F>(&self, recipient: &str, f: F) -> Result<(), ServiceError>
    where
        F: Fn(&people::State) -> Result<Option<people::Change>, ServiceError>,
    {
        people::change(&self.store, recipient, |state| {
            if state.erased {
                return Err(erased());
            }
            Ok(((), f(state)?))
        })
        .await
    }
}

#[tonic::async_trait]
impl NotifyService for Notify {
    async fn list_notices(&self, req: Request<pb::ListNoticesRequest>) -> Result<Response<pb::NoticePage>, Status> {
        Inbox::list_notices(self, req).await
    }

    async fn mark_notice_read(&self, req: Request<pb::MarkNoticeReadRequest>) -> Result<Response<pb::Notice>, Status> {
        Inbox::mark_notice_read(self, req).await
    }

    async fn vapid_public_key(
        &self,
        _: Request<pb::VapidPublicKeyRequest>,
    ) -> Result<Response<pb::VapidPublicKeyResponse>, Status> {
        Ok(Response::new(pb::VapidPublicKeyResponse { key: self.pusher.public_key().to_owned() }))
    }

    async fn add_push_subscription(
        &self,
        req: Request<pb::AddPushSubscriptionRequest>,
    ) -> Result<Response<pb::AddPushSubscriptionResponse>, Status> {
        crate::subscriptions::add(self, req).await
    }

    async fn list_push_subscriptions(
        &self,
        req: Request<pb::ListPushSubscriptionsRequest>,
    ) -> Result<Response<pb::ListPushSubscriptionsResponse>, Status> {
        crate::subscriptions::list(self, req).await
    }

    async fn delete_push_subscription(
        &self,
        req: Request<pb::DeletePushSubscriptionRequest>,
    ) -> Result<Response<pb::DeletePushSubscriptionResponse>, Status> {
        crate::subscriptions::delete(self, req).await
    }

    async fn get_preferences(
        &self,
        req: Request<pb::GetPreferencesRequest>,
    ) -> Result<Response<pb::PreferencesView>, Status> {
        let r = req.into_inner();
        let who = person_recipient(&r.recipient)?;
        let state = people::load(&self.store, &who).await.map_err(ServiceError::from)?;
        Ok(Response::new(view_of(&state.preferences.unwrap_or_default(), &r.default_language)))
    }

    async fn set_preferences(
        &self,
        req: Request<pb::SetPreferencesRequest>,
    ) -> Result<Response<pb::PreferencesView>, Status> {
        let r = req.into_inner();
        let who = person_recipient(&r.recipient)?;
        let mut prefs = checked(r.preferences)?;
        if let Some(q) = prefs.quiet_hours.as_mut()
            && q.timezone.is_empty()
            && r.default_timezone.parse::<chrono_tz::Tz>().is_ok()
        {
            q.timezone = r.default_timezone.clone();
        }
        let event = NotificationPreferencesSet { recipient: who.clone(), preferences: prefs.clone(), by: "set".into() };
        let payload = serde_json::to_value(&event).map_err(|e| ServiceError::Internal(e.to_string()))?;
        self.change(&who, |_| Ok(Some(("NotificationPreferencesSet", payload.clone(), vec![])))).await?;
        Ok(Response::new(view_of(&prefs, &r.default_language)))
    }

    async fn unsubscribe(
        &self,
        req: Request<pb::UnsubscribeRequest>,
    ) -> Result<Response<pb::UnsubscribeResponse>, Status> {
        let r = req.into_inner();
        let Some((who, kind)) = people::verify_unsubscribe(&self.keys, &r.token) else {
            return Err(Status::unauthenticated("not a valid unsubscribe link"));
        };
        if !r.check_only {
            let (kind2, who2) = (kind.clone(), who.clone());
            self.change(&who, move |state| {
                let mut prefs = state.preferences.clone().unwrap_or_default();
                let mut list = prefs.channels_of(&kind2);
                if !list.iter().any(|c| c == "email") {
                    return Ok(None);
                }
                list.retain(|c| c != "email");
                prefs.channels.insert(kind2.clone(), list);
                let event = NotificationPreferencesSet {
                    recipient: who2.clone(),
                    preferences: prefs,
                    by: format!("unsubscribed:{kind2}"),
                };
                let payload = serde_json::to_value(&event).map_err(|e| ServiceError::Internal(e.to_string()))?;
                Ok(Some(("NotificationPreferencesSet", payload, vec![])))
            })
            .await
            // An erased recipient's link stops nothing more: already nothing is sent.
            .or_else(|e| if matches!(e, ServiceError::NotFound(_)) { Ok(()) } else { Err(e) })?;
        }
        Ok(Response::new(pb::UnsubscribeResponse { kind }))
    }

    async fn set_contact(
        &self,
        req: Request<pb::SetContactRequest>,
    ) -> Result<Response<pb::SetContactResponse>, Status> {
        let r = req.into_inner();
        let who = person_recipient(&r.recipient)?;
        let mut bad = Vec::new();
        let email = r.email.filter(|e| !e.is_empty());
        let phone = r.phone.filter(|p| !p.is_empty());
        if let Some(e) = &email
            && (e.len() > 254 || e.parse::<lettre::Address>().is_err())
        {
            bad.push(Invalid::new("/email", "not an e-mail address"));
        }
        if let Some(p) = &phone
            && !e164(p)
        {
            bad.push(Invalid::new("/phone", "must be in E.164 form (+4512345678)"));
        }
        if email.is_none() && phone.is_none() && bad.is_empty() {
            bad.push(Invalid::new("/email", "give `email`, `phone` or both"));
        }
        if !bad.is_empty() {
            return Err(ServiceError::Invalid(bad).into());
        }
        if people::erased(&self.store, &who).await.map_err(ServiceError::from)? {
            return Err(erased().into());
        }
        let lang = Language::parse(&r.language).unwrap_or(Language::En);
        let now = chrono::SubsecRound::trunc_subsecs(servicekit::clock::now(), 6);
        let mut pending = Vec::new();
        for (channel, address) in [("email", email), ("sms", phone)] {
            let Some(address) = address else { continue };
            let code = format!("{:06}", rand::random_range(0..1_000_000u32));
            let sealed = self.keys.seal(&who, channel, &address).await.map_err(key_error)?;
            let secret = Secret { to: Some(address), code: code.clone() };
            let facts = Facts {
                sealed: Some(self.keys.seal_json(&who, "notice", &secret).await.map_err(key_error)?),
                language: Some(if lang == Language::Da { "da" } else { "en" }.into()),
                ..Facts::default()
            };
            let set = ContactDetailsSet {
                recipient: who.clone(),
                channel: channel.into(),
                address: sealed,
                code_digest: people::code_digest(&self.keys, &who, channel, &code),
                expires_at: now + chrono::Duration::hours(CODE_VALID_HOURS),
            };
            let occasion = format!("contact/{channel}/{}", Uuid::now_v7());
            let notice_id = notices::notice_id(kind::CONTACT_CONFIRMATION, &occasion, &who, channel);
            let decided = NoticeDecided {
                notice_id,
                kind: kind::CONTACT_CONFIRMATION.into(),
                occasion,
                recipient: who.clone(),
                channel: if channel == "sms" { "sms".into() } else { channel::EMAIL.into() },
                due_at: now,
                facts,
            };
            let notice = NewEvent::with_id(notice_id, "NoticeDecided", &decided).map_err(ServiceError::from)?;
            let payload = serde_json::to_value(&set).map_err(|e| ServiceError::Internal(e.to_string()))?;
            let more = StreamAppend::new(notices::stream(notice_id), ExpectedVersion::NoStream, vec![notice]);
            self.change(&who, |_| Ok(Some(("ContactDetailsSet", payload.clone(), vec![more.clone()])))).await?;
            pending.push(channel.to_owned());
        }
        Ok(Response::new(pb::SetContactResponse { pending }))
    }

    async fn send_invitation(
        &self,
        req: Request<pb::SendInvitationRequest>,
    ) -> Result<Response<pb::SendInvitationResponse>, Status> {
        let r = req.into_inner();
        let pilot: Uuid = r.pilot_id.parse().map_err(|_| ServiceError::invalid("/pilot_id", "must be a UUID"))?;
        let invitation: Uuid =
            r.invitation_id.parse().map_err(|_| ServiceError::invalid("/invitation_id", "must be a UUID"))?;
        if r.code.is_empty() || r.code.len() > 200 {
            return Err(ServiceError::invalid("/code", "1 to 200 characters").into());
        }
        let recipient = format!("pilot:{pilot}");
        let occasion = format!("invitation/{invitation}");
        let notice_id = notices::notice_id(kind::INVITATION, &occasion, &recipient, channel::EMAIL);
        if people::erased(&self.store, &recipient).await.map_err(ServiceError::from)? {
            return Err(ServiceError::NotFound("pilot".into()).into());
        }
        let secret = Secret { to: None, code: r.code };
        let sealed = self.keys.seal_json(&recipient, "notice", &secret).await.map_err(key_error)?;
        let facts = Facts {
            sealed: Some(sealed),
            language: Language::parse(&r.language).map(|l| if l == Language::Da { "da" } else { "en" }.to_owned()),
            ..Facts::default()
        };
        let now = chrono::SubsecRound::trunc_subsecs(servicekit::clock::now(), 6);
        let decided = NoticeDecided {
            notice_id,
            kind: kind::INVITATION.into(),
            occasion,
            recipient,
            channel: channel::EMAIL.into(),
            due_at: now,
            facts,
        };
        let mut event = NewEvent::with_id(notice_id, "NoticeDecided", &decided).map_err(ServiceError::from)?;
        event.metadata.tenant = r.chapter_id.parse().ok();
        match self
            .store
            .append(vec![StreamAppend::new(notices::stream(notice_id), ExpectedVersion::NoStream, vec![event])])
            .await
        {
            Ok(_)
            | Err(eventlog::Error::IdempotencyClash { .. })
            | Err(eventlog::Error::WrongExpectedVersion { .. }) => {}
            Err(e) => return Err(ServiceError::from(e).into()),
        }
        Ok(Response::new(pb::SendInvitationResponse { notice_id: notice_id.to_string() }))
    }

    async fn export_recipients(
        &self,
        req: Request<pb::ExportRecipientsRequest>,
    ) -> Result<Response<pb::ExportRecipientsResponse>, Status> {
        let r = req.into_inner();
        let who = recipients(&r.recipients)?;
        let mut out = Vec::new();
        for recipient in who {
            let mut e = pb::RecipientExport { recipient: recipient.clone(), ..Default::default() };
            if let Some(person) = recipient.strip_prefix("person:") {
                for channel in ["email", "sms"] {
                    let Some(row) = people::contact(&self.store, person, channel).await.map_err(ServiceError::from)?
                    else {
                        continue;
                    };
                    let c = people::unseal(&self.keys, &recipient, channel, &row.confirmed).await.unwrap_or_default();
                    let p = people::unseal(&self.keys, &recipient, channel, &row.pending).await.unwrap_or_default();
                    if channel == "email" {
                        (e.email, e.pending_email) = (c, p);
                    } else {
                        (e.phone, e.pending_phone) = (c, p);
                    }
                }
            }
            let prefs =
                people::preferences(&self.store, &recipient).await.map_err(ServiceError::from)?.unwrap_or_default();
            e.preferences = Some(view_of(&prefs, ""));
            let lang = prefs.language.as_deref().and_then(Language::parse);
            let all = inbox::page(&self.store, std::slice::from_ref(&recipient), None, 10_000, false)
                .await
                .map_err(ServiceError::from)?;
            e.notices = all.iter().map(|n| to_proto(n, lang)).collect();
            let rows: Vec<(String, String, String, String, i64)> = self
                .store
                .fetch_rows(
                    "SELECT notice_id, kind, channel, outcome, at FROM notify_deliveries WHERE recipient = $1 \
                     UNION ALL SELECT notice_id, kind, channel, 'waiting', due_at FROM notify_outbox WHERE recipient = $1",
                    &[recipient.as_str().into()],
                )
                .await
                .map_err(ServiceError::from)?;
            if recipient.starts_with("person:") {
                e.push_subscriptions = crate::subscriptions::list_of(self, &recipient).await?;
            }
            e.deliveries = rows
                .into_iter()
                .map(|(notice_id, kind, channel, outcome, at)| pb::Delivery {
                    notice_id,
                    kind,
                    channel,
                    outcome,
                    at: Some(samskab_proto::time::to_proto(crate::facts::from_micros(at))),
                })
                .collect();
            out.push(e);
        }
        Ok(Response::new(pb::ExportRecipientsResponse { recipients: out }))
    }

    async fn erase_recipient(
        &self,
        req: Request<pb::EraseRecipientRequest>,
    ) -> Result<Response<pb::EraseRecipientResponse>, Status> {
        let r = req.into_inner();
        let who = person_recipient(&r.recipient)?;
        let event = NewEvent::new("RecipientErased", &people::RecipientErased { recipient: who.clone() })
            .map_err(ServiceError::from)?;
        self.store
            .append(vec![StreamAppend::new(people::stream(&who), ExpectedVersion::Any, vec![event])])
            .await
            .map_err(ServiceError::from)?;
        // The person's key: their sealed addresses and codes, in the log too, are unreadable.
        self.keys.erase(&who).await.map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        Ok(Response::new(pb::EraseRecipientResponse {}))
    }

    async fn confirm_contact(
        &self,
        req: Request<pb::ConfirmContactRequest>,
    ) -> Result<Response<pb::ConfirmContactResponse>, Status> {
        let r = req.into_inner();
        let who = person_recipient(&r.recipient)?;
        if !["email", "sms"].contains(&r.channel.as_str()) {
            return Err(ServiceError::invalid("/channel", "must be `email` or `sms`").into());
        }
        if r.code.len() != 6 || !r.code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ServiceError::invalid("/code", "must be the 6 digits sent").into());
        }
        let digest = people::code_digest(&self.keys, &who, &r.channel, &r.code);
        let now = servicekit::clock::now();
        let channel = r.channel.clone();
        let wrong = std::sync::atomic::AtomicU32::new(0);
        self.change(&who, |state| {
            let Some(p) = state.pending.get(&channel) else {
                return Err(ServiceError::NotFound("pending contact".into()));
            };
            if p.tries >= MAX_TRIES {
                return Err(ServiceError::conflict(
                    ErrorCode::CodeLocked,
                    "too many wrong codes: set the address again",
                    None,
                ));
            }
            if now > p.expires_at {
                return Err(ServiceError::rule(ErrorCode::CodeExpired, "the code expired: set the address again"));
            }
            let r = ContactConfirmationFailed { recipient: who.clone(), channel: channel.clone() };
            if people::same_digest(&p.code_digest, &digest) {
                let c = ContactConfirmed { recipient: who.clone(), channel: channel.clone() };
                let payload = serde_json::to_value(&c).map_err(|e| ServiceError::Internal(e.to_string()))?;
                return Ok(Some(("ContactConfirmed", payload, vec![])));
            }
            wrong.store(p.tries + 1, std::sync::atomic::Ordering::Relaxed);
            let payload = serde_json::to_value(&r).map_err(|e| ServiceError::Internal(e.to_string()))?;
            Ok(Some(("ContactConfirmationFailed", payload, vec![])))
        })
        .await?;
        match wrong.load(std::sync::atomic::Ordering::Relaxed) {
            0 => Ok(Response::new(pb::ConfirmContactResponse { channel: r.channel })),
            n if n >= MAX_TRIES => {
                Err(ServiceError::conflict(ErrorCode::CodeLocked, "too many wrong codes: set the address again", None)
                    .into())
            }
            n => {
                Err(ServiceError::rule(ErrorCode::CodeWrong, format!("wrong code; {} tries left", MAX_TRIES - n))
                    .into())
            }
        }
    }
}

/// A person erased here keeps no contact details or preferences: a request to set them
/// (a development token outlives its person's erasure) finds no such person.
pub(crate) fn erased() -> ServiceError {
    ServiceError::NotFound("person (erased: nothing is kept for them)".into())
}

/// A key store error: an erased subject is [`erased`], anything else unavailable.
fn key_error(e: keystore::Error) -> ServiceError {
    match e {
        keystore::Error::Erased(_) => erased(),
        e => ServiceError::Unavailable(e.to_string()),
    }
}

/// Whether `p` is a phone number in E.164 form.
pub fn e164(p: &str) -> bool {
    let digits = p.strip_prefix('+').unwrap_or("");
    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}
