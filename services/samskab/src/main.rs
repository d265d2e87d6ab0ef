//! The `samskab` binary: `serve` (everything in one process), the operator commands, and
//! `run <component>` to run one component on its own.

use clap::{Parser, Subcommand};

mod config_reference;

#[derive(Parser)]
#[command(name = "samskab", about = "Samskab: trishaw rides for care-home residents, run by volunteers", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the three services and the REST API in one process (SQLite files in the data directory).
    Serve {
        /// Seed a demo chapter (Aarhus) once and print tokens and example requests.
        #[arg(long)]
        demo: bool,
        #[command(flatten)]
        config: samskab::ServeConfig,
    },
    /// Print a signed token for this data directory's keys (the last word on stdout).
    Token {
        #[command(flatten)]
        token: samskab::ops::TokenArgs,
        #[command(flatten)]
        config: samskab::ServeConfig,
    },
    /// Print an invitation code to the admin role (bootstrap: the code is the last word on
    /// stdout; redeem it signed in at `POST /v1/invitations/redeem`).
    Invite {
        #[command(flatten)]
        invite: samskab::ops::InviteArgs,
        #[command(flatten)]
        config: samskab::ServeConfig,
    },
    /// Apply every database migration, seal free text older releases stored in clear, and exit.
    Migrate {
        #[command(flatten)]
        config: samskab::ServeConfig,
        #[command(flatten)]
        args: samskab::ops::MigrateArgs,
    },
    /// Rebuild every read model from the event logs (run while Samskab is stopped).
    RebuildProjections {
        #[command(flatten)]
        config: samskab::ServeConfig,
    },
    /// Append a long history of generated past rides to booking's log, for rebuild and start benchmarks (run while Samskab is stopped, on a data directory whose world booking already knows); prints the generated counts per chapter as one JSON line.
    GenerateHistory {
        #[command(flatten)]
        history: samskab::ops::HistoryArgs,
        #[command(flatten)]
        config: samskab::ServeConfig,
    },
    /// Write a new master key, token signing key and person key into a directory (mode
    /// 0700, files 0600), keeping any that are already there; for components run on their
    /// own (`SAMSKAB_DATA_DIR` or the `*_FILE` variables pointing at them).
    Keys {
        /// The directory.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Write a development CA and a certificate per component into a directory (`ca.pem`,
    /// `<component>.pem`, `<component>.key`) for mutual TLS between components run one by
    /// one (`SAMSKAB_TLS_CERT`, `SAMSKAB_TLS_KEY`, `SAMSKAB_TLS_CA`). Production
    /// certificates come from the cluster's issuer.
    Certs {
        /// The directory.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Give each component a new master key of its own in the key directory
    /// (`<data dir>.keys`), re-wrapping every key under it (run while Samskab is stopped).
    RotateMasterKey {
        #[command(flatten)]
        config: samskab::ServeConfig,
    },
    /// Run one component on its own (the code path of separate deployment).
    Run {
        #[command(subcommand)]
        component: Component,
    },
    /// Print the configuration reference of every binary (docs/configuration.md).
    #[command(hide = true)]
    ConfigReference {
        /// As JSON (for the deployment check) instead of Markdown.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum Component {
    /// The booking service (gRPC).
    Booking(booking::Config),
    /// The care-home service (gRPC).
    Carehome(carehome::Config),
    /// The volunteer service (gRPC).
    Volunteer(volunteer::Config),
    /// The notify service (gRPC).
    Notify(Box<notify::Config>),
    /// The REST gateway.
    Gateway(Box<gateway::Config>),
}

/// mimalloc rather than glibc's malloc: every request allocates and frees many small
/// buffers across threads (HTTP, gRPC, rows handed over from SQLite's threads), where
/// glibc spent 15 % of a loaded all-in-one's CPU (issue 22, BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result: Result<(), String> = match cli.command {
        Command::Token { token, config } => {
            samskab::ops::token(&config, &token).map(|t| println!("{t}")).map_err(|e| e.to_string())
        }
        Command::Certs { out } => servicekit::tls::write_dev_certs(&out).map(|written| {
            if written.is_empty() {
                println!("kept the certificates in {}", out.display());
            }
            for file in written {
                println!("wrote {}", file.display());
            }
        }),
        Command::Keys { out } => samskab::ops::write_keys(&out).map(|written| {
            for (file, made) in written {
                println!("{} {}", if made { "wrote" } else { "kept" }, out.join(file).display());
            }
        }),
        Command::ConfigReference { json } => {
            match json {
                true => println!("{:#}", config_reference::json()),
                false => print!("{}", config_reference::markdown()),
            }
            Ok(())
        }
        command => {
            let telemetry = telemetry::init("samskab");
            let shutdown = servicekit::server::shutdown_signal();
            let r = match command {
                Command::Serve { demo, config } => {
                    samskab::serve(&config, demo, shutdown).await.map_err(|e| e.to_string())
                }
                Command::RotateMasterKey { config } => match samskab::ops::rotate_master_keys(&config).await {
                    Ok(moved) => {
                        for (component, keys) in moved {
                            println!("{component}: {keys} keys re-wrapped under a new master key of its own");
                        }
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                },
                Command::Migrate { config, args } => {
                    samskab::ops::migrate(&config, &args).await.map_err(|e| e.to_string())
                }
                Command::Invite { invite, config } => match samskab::ops::invite(&config, &invite).await {
                    Ok(code) => {
                        println!(
                            "An invitation to the {} role, valid {} h. Sign in and redeem it: \
                             POST /v1/invitations/redeem {{\"code\": \"...\"}}. It is shown this once:",
                            invite.role, invite.expires_in_hours
                        );
                        println!("{code}");
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                },
                Command::RebuildProjections { config } => {
                    samskab::ops::rebuild(&config).await.map_err(|e| e.to_string())
                }
                Command::GenerateHistory { history, config } => {
                    samskab::ops::generate_history(&config, &history).await.map_err(|e| e.to_string())
                }
                Command::Run { component } => match component {
                    Component::Booking(c) => booking::run(c, shutdown).await.map_err(|e| e.to_string()),
                    Component::Carehome(c) => carehome::run(c, shutdown).await.map_err(|e| e.to_string()),
                    Component::Volunteer(c) => volunteer::run(c, shutdown).await.map_err(|e| e.to_string()),
                    Component::Notify(c) => notify::run(*c, shutdown).await.map_err(|e| e.to_string()),
                    Component::Gateway(c) => gateway::run(*c, shutdown).await.map_err(|e| e.to_string()),
                },
                Command::Token { .. }
                | Command::Keys { .. }
                | Command::Certs { .. }
                | Command::ConfigReference { .. } => {
                    unreachable!("handled above")
                }
            };
            telemetry.shutdown();
            r
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("samskab: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
