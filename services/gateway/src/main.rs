//! The gateway binary.

use clap::Parser;

#[derive(Parser)]
#[command(name = "samskab-gateway", about = "Samskab's REST gateway", version)]
struct Cli {
    #[command(flatten)]
    config: gateway::Config,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let telemetry = telemetry::init("gateway");
    let result = gateway::run(cli.config, servicekit::server::shutdown_signal()).await;
    telemetry.shutdown();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("samskab-gateway: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
