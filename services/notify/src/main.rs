//! The notify service binary.

use clap::Parser;

#[derive(Parser)]
#[command(name = "samskab-notify", about = "Samskab's notify service (gRPC)", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<servicekit::bootstrap::Command>,
    #[command(flatten)]
    config: notify::Config,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let telemetry = telemetry::init("notify");
    let result = match cli.command {
        None | Some(servicekit::bootstrap::Command::Serve) => {
            notify::run(cli.config, servicekit::server::shutdown_signal()).await
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
            eprintln!("samskab-notify: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
