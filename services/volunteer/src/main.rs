//! The volunteer service binary.

use clap::Parser;

#[derive(Parser)]
#[command(name = "samskab-volunteer", about = "Samskab's volunteer service (gRPC)", version)]
struct Cli {
    #[command(flatten)]
    config: volunteer::Config,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let telemetry = telemetry::init("volunteer");
    let result = volunteer::run(cli.config, servicekit::server::shutdown_signal()).await;
    telemetry.shutdown();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("samskab-volunteer: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
