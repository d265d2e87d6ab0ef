//! The booking service binary.

use clap::Parser;

#[derive(Parser)]
#[command(name = "samskab-booking", about = "Samskab's booking service (gRPC)", version)]
struct Cli {
    #[command(flatten)]
    config: booking::Config,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let telemetry = telemetry::init("booking");
    let result = booking::run(cli.config, servicekit::server::shutdown_signal()).await;
    telemetry.shutdown();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("samskab-booking: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
