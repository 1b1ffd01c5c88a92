//! The replica as a server on 127.0.0.1 speaking the IC's HTTP interface, so real IC clients
//! (ic-agent, icp-cli, agent-js) can talk to it: `status`, `query`, `call` and `read_state`,
//! CBOR bodies, request ids, ingress expiry, ed25519/secp256k1/P-256 signatures and
//! delegations checked, certificates signed by the replica's root key, query replies signed by
//! its one node. See docs/http-front.md for what each client needs and where this differs from the IC.
//!
//! One thread owns the [`LocalReplica`] and answers requests one at a time, as a subnet orders
//! messages; between requests it follows the wall clock and runs rounds while messages wait
//! (jobs that continue after their call has been answered) or timers are due.

mod api;
mod envelope;
mod management;
mod server;
mod state;
mod system_canisters;

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use candid::Principal;

use crate::LocalReplica;

/// What the replica's thread holds: the replica and what the HTTP interface keeps beside it.
pub struct Front {
    pub replica: LocalReplica,
    /// Calls executed, by request id: their answers for `read_state` and for a request sent again.
    finished: HashMap<[u8; 32], api::Finished>,
    /// Each canister's chunk store (the management canister's `upload_chunk`).
    chunk_stores: HashMap<Principal, BTreeMap<[u8; 32], Vec<u8>>>,
    /// Canisters created through the cycles ledger, for its block ids.
    created: u64,
    /// Calls admitted and executed, by canister and method (a test counts what a client sent).
    pub calls_by_method: BTreeMap<(Principal, String), u64>,
    /// Latency added before each update call executes, so a test can stop a client mid-way
    /// (zero unless a test sets it).
    pub call_delay: Duration,
}

type Job = Box<dyn FnOnce(&mut Front) + Send>;

pub(super) enum Work {
    Http(server::Request),
    Job(Job),
    Stop,
}

/// A running server. Dropping it stops it.
pub struct HttpReplica {
    url: String,
    work: mpsc::Sender<Work>,
    stop: Arc<AtomicBool>,
    address: std::net::SocketAddr,
    replica_thread: Option<JoinHandle<()>>,
}

fn wall_clock_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_nanos() as u64
}

impl HttpReplica {
    /// Listens on `127.0.0.1:port` (0 picks a free port). `setup` runs on the replica before the
    /// first request, with its clock already at the wall clock's time.
    pub fn start(port: u16, setup: impl FnOnce(&mut LocalReplica) + Send + 'static) -> std::io::Result<HttpReplica> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let address = listener.local_addr()?;
        let (work, inbox) = mpsc::channel::<Work>();
        let stop = Arc::new(AtomicBool::new(false));
        let replica_thread = std::thread::spawn(move || {
            let mut replica = LocalReplica::new();
            replica.reserve_canister_ids(system_canisters::reserved_ids());
            replica.advance_time_to(wall_clock_nanos());
            setup(&mut replica);
            let front = Front {
                replica,
                finished: HashMap::new(),
                chunk_stores: HashMap::new(),
                created: 0,
                calls_by_method: BTreeMap::new(),
                call_delay: Duration::ZERO,
            };
            run(front, inbox);
        });
        // Connections put their parsed requests into the replica thread's one inbox.
        let (requests, accept_stop) = (work.clone(), stop.clone());
        std::thread::spawn(move || server::accept_loop(listener, requests, accept_stop));
        Ok(HttpReplica { url: format!("http://{address}"), work, stop, address, replica_thread: Some(replica_thread) })
    }

    /// The URL clients connect to, e.g. `http://127.0.0.1:4943`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `f` on the replica's thread, between requests, and returns what it returns.
    pub fn with<T: Send + 'static>(&self, f: impl FnOnce(&mut Front) -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move |front| {
            let _ = tx.send(f(front));
        });
        self.work.send(Work::Job(job)).expect("the replica thread is running");
        rx.recv().expect("the replica thread answered")
    }

    /// Blocks until the replica's thread ends (it runs as long as the server); a panic there
    /// (a bug: no request should cause one) is passed on.
    pub fn wait(mut self) {
        if let Some(t) = self.replica_thread.take() {
            if let Err(panic) = t.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

impl Drop for HttpReplica {
    /// Stops accepting, ends the replica's thread after the request it is on, and waits for it;
    /// connections still open get 503s.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(self.address);
        let _ = self.work.send(Work::Stop);
        if let Some(t) = self.replica_thread.take() {
            let _ = t.join();
        }
    }
}

/// The replica's thread: answers requests and jobs in arrival order; when idle, follows the
/// wall clock and runs a round whenever there is work.
fn run(mut front: Front, inbox: mpsc::Receiver<Work>) {
    loop {
        let wait = if front.replica.has_work() { Duration::ZERO } else { Duration::from_millis(50) };
        let work = inbox.recv_timeout(wait);
        front.replica.advance_time_to(wall_clock_nanos());
        match work {
            Ok(Work::Http(request)) => {
                let reply = api::handle(
                    &mut front,
                    &request.method,
                    &request.path,
                    request.content_type.as_deref(),
                    &request.body,
                );
                let _ = request.answer.send(reply);
            }
            Ok(Work::Job(job)) => job(&mut front),
            Ok(Work::Stop) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if front.replica.has_work() {
                    front.replica.tick();
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}
