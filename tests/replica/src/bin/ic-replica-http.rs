//! Runs the local replica as a server speaking the IC's HTTP interface, until killed.
//!
//! Usage: `ic-replica-http [--port N]` (default 4943, the port local networks use; 0 picks a free
//! one). The first line of output is the URL it listens on; the second, the root key in hex,
//! for clients that take it rather than fetch it from `/api/v2/status`.

use anyhow::{bail, Context, Result};
use ic_replica::http::HttpReplica;

fn main() -> Result<()> {
    let mut port: u16 = 4943;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => port = args.next().context("--port needs a number")?.parse().context("--port")?,
            other => bail!("unknown argument {other} (usage: ic-replica-http [--port N])"),
        }
    }
    let server = HttpReplica::start(port, |_| {}).with_context(|| format!("listening on 127.0.0.1:{port}"))?;
    println!("{}", server.url());
    println!("{}", hex::encode(ic_replica::certification::root_key_der()));
    server.wait();
    Ok(())
}
