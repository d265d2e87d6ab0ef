//! Generated gRPC code for Samskab's services, from `proto/` (compiled by protox: no
//! system `protoc` needed), plus the file descriptor set for gRPC reflection.

/// Types shared by every service.
pub mod common {
    /// Version 1.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("samskab.common.v1");
    }
}

/// The volunteer service.
pub mod volunteer {
    /// Version 1.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("samskab.volunteer.v1");
    }
}

/// The care-home service.
pub mod carehome {
    /// Version 1.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("samskab.carehome.v1");
    }
}

/// The booking service.
pub mod booking {
    /// Version 1.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("samskab.booking.v1");
    }
}

/// The notify service.
pub mod notify {
    /// Version 1.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("samskab.notify.v1");
    }
}

/// The encoded file descriptor set of every proto, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("descriptor");

pub use prost_types::Timestamp;

/// Converts between `prost_types::Timestamp` and `chrono`.
pub mod time {
    use chrono::{DateTime, Utc};

    /// A UTC time as a protobuf timestamp.
    pub fn to_proto(t: DateTime<Utc>) -> prost_types::Timestamp {
        prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
    }

    /// A protobuf timestamp as a UTC time; `None` when out of range.
    pub fn from_proto(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
        if !(0..1_000_000_000).contains(&t.nanos) {
            return None;
        }
        DateTime::from_timestamp(t.seconds, t.nanos as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_set_lists_the_shared_package() {
        use prost::Message;
        let fds = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
        assert!(fds.file.iter().any(|f| f.package() == "samskab.common.v1"));
    }

    #[test]
    fn timestamps_round_trip() {
        let t = chrono::DateTime::parse_from_rfc3339("2027-03-28T01:59:59.5Z").unwrap().to_utc();
        assert_eq!(time::from_proto(&time::to_proto(t)), Some(t));
        assert_eq!(time::from_proto(&prost_types::Timestamp { seconds: 0, nanos: -1 }), None);
    }
}
