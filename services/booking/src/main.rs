//! The booking service binary.

use clap::Parser;

#[derive(Parser)]
#[command(name = "samskab-booking", about = "Samskab's booking service (gRPC)", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<servicekit::bootstrap::Command>,
    #[command(flatten)]
    config: booking::Config,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let telemetry = telemetry::init("booking");
    let result = match cli.command {
        None | Some(servicekit::bootstrap::Command::Serve) => {
            booking::run(cli.config, servicekit::server::shutdown_signal()).await
        }
        Some(servicekit::bootstrap::Command::RotateMasterKey { old_key_file }) => {
            servicekit::bootstrap::rotate_master_key(&cli.config.database_url, &cli.config.keys, &old_key_file)
                .await
                .map(|n| println!("re-wrapped {n} keys under the current master key"))
                .map_err(Into::into)
        }
    };
    telemetry.shutdown();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("samskab-booking: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
