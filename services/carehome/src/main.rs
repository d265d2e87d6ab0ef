//! The care-home service binary.

use clap::Parser;

#[derive(Parser)]
#[command(name = "samskab-carehome", about = "Samskab's care-home service (gRPC)", version)]
struct Cli {
    #[command(flatten)]
    config: carehome::Config,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let telemetry = telemetry::init("carehome");
    let result = carehome::run(cli.config, servicekit::server::shutdown_signal()).await;
    telemetry.shutdown();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("samskab-carehome: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
