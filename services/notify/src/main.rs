//! The notify service binary.

use clap::Parser;

#[derive(Parser)]
#[command(name = "samskab-notify", about = "Samskab's notify service (gRPC)", version)]
struct Cli {
    #[command(flatten)]
    config: notify::Config,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let telemetry = telemetry::init("notify");
    let result = notify::run(cli.config, servicekit::server::shutdown_signal()).await;
    telemetry.shutdown();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("samskab-notify: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
