//! More booking processes: the `samskab-booking` binary beside the in-process service, on
//! the same database (its own module: other packages' tests share `common` without it).

use crate::common::World;

/// A booking process the test started (killed when dropped).
pub struct Process(pub tokio::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// The `samskab-booking` binary on `w`'s booking database (and the test's clock file, if
/// given), beside the in-process one.
pub fn spawn_booking(w: &World, port: u16, clock_file: Option<&std::path::Path>) -> Process {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_samskab-booking"));
    cmd.env("SAMSKAB_BOOKING_DATABASE_URL", format!("{}{}", w.db.sibling("booking"), w.url_options))
        .env("SAMSKAB_BOOKING_LISTEN", format!("127.0.0.1:{port}"))
        .env("SAMSKAB_CAREHOME_URL", format!("http://{}", w.carehome_addr))
        .env("SAMSKAB_VOLUNTEER_URL", w.volunteer_url())
        .env("SAMSKAB_MASTER_KEY", w.master.to_hex())
        // The erasure ledger in the test's own database (not samskab-data/ in the working
        // directory), one for every process, as in a deployment.
        .env("SAMSKAB_ERASURE_LEDGER_URL", w.db.sibling("ledger"))
        .env("SAMSKAB_INSECURE_PLAINTEXT", "true")
        .env("SAMSKAB_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    if let Some(f) = clock_file {
        cmd.env(servicekit::clock::TEST_CLOCK_VAR, f);
    }
    Process(cmd.spawn().expect("start samskab-booking"))
}
