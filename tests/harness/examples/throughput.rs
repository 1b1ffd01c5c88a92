//! Throughput: how many classifications per round (and per second) inference canisters serve on
//! one application subnet and on two, and how many rounds each waits, when many agencies send at
//! once. Each agency call's messages and their exact instructions come from running it on the
//! local replica (`decide` on an agency canister: its request, the inference canister's
//! messages, the agency's callback); the subnet model (`ic_replica::subnet`, the IC's scheduler
//! in outline) then schedules thousands of them across rounds and threads.
//!
//! Writes `target/bench/throughput.yml`; `scripts/bench.sh --check` compares it with
//! `benchmarks/throughput.yml`.

use std::fmt::Write as _;

use agency_api::Document;
use canister_harness::cases::input;
use canister_harness::deploy::{Deployment, AGENCY_USER};
use canister_harness::user;
use ic_replica::subnet::{simulate, Call, Place, SubnetConfig};
use model_testdata::case;

/// Agencies sending at once, and the calls each has waiting (all at round 0: a backlog, so the
/// run shows the rate the canisters sustain).
const AGENCIES: usize = 16;
const CALLS_PER_AGENCY: usize = 64;
/// The agencies' canisters live on a subnet of their own (subnet 0): inference subnets are 1, 2.
const AGENCY_SUBNET: usize = 0;

/// One agency call's messages: (on the agency, or on the inference canister, instructions).
struct Trace {
    model: String,
    steps: Vec<(bool, u64)>,
}

fn trace(d: &mut Deployment, model: &str) -> Trace {
    let c = case(model.split('.').next().unwrap(), model.split('.').nth(1).unwrap());
    d.publish(model, &c, &[]);
    let agency = d.install_agency(model);
    let doc = Document { id: "throughput".into(), image: input(&c) };
    let (result, cost) = d.call_agency(user(AGENCY_USER), agency_api::calls::decide(&doc));
    result.expect("decide replies").expect("decide classifies");
    assert!(!cost.per_message.is_empty(), "the local replica reports each message");
    let steps = cost.per_message.iter().map(|(canister, instructions)| (*canister == agency, *instructions)).collect();
    Trace { model: model.into(), steps }
}

/// `AGENCIES` × `CALLS_PER_AGENCY` calls, agency `a`'s calls going to inference canister
/// `(a + k) mod n` of those `placed`.
fn workload(trace: &Trace, inference: &[Place]) -> Vec<Call> {
    let mut calls = Vec::new();
    for k in 0..CALLS_PER_AGENCY {
        for a in 0..AGENCIES {
            let agency = Place { subnet: AGENCY_SUBNET, canister: a };
            let target = inference[(a + k) % inference.len()];
            let steps =
                trace.steps.iter().map(|&(on_agency, i)| (if on_agency { agency } else { target }, i)).collect();
            calls.push(Call { arrives: 0, steps });
        }
    }
    calls
}

fn main() {
    let mut d = Deployment::new("none");
    let traces = [trace(&mut d, "rapidocr_cls.fp32"), trace(&mut d, "opennsfw.fp32")];
    let config = SubnetConfig::APPLICATION;
    let mut yaml = String::from("throughput:\n");
    eprintln!(
        "{:<44} {:>6} {:>8} {:>10} {:>5} {:>5} {:>5} {:>7}",
        "", "rounds", "/round", "/second", "p50", "p90", "p99", "aborted"
    );
    for trace in &traces {
        let inference_messages: Vec<u64> = trace.steps.iter().filter(|s| !s.0).map(|s| s.1).collect();
        let mut layouts: Vec<(String, Vec<Place>)> = [1, 2, 4, 8]
            .into_iter()
            .map(|n| (format!("{n}_canisters/1_subnet"), (0..n).map(|c| Place { subnet: 1, canister: c }).collect()))
            .collect();
        for per_subnet in [4, 8] {
            let places = (0..2 * per_subnet).map(|c| Place { subnet: 1 + c % 2, canister: c / 2 }).collect();
            layouts.push((format!("{}_canisters/2_subnets", 2 * per_subnet), places));
        }
        writeln!(yaml, "  {}:", trace.model).unwrap();
        let agency_messages: Vec<u64> = trace.steps.iter().filter(|s| s.0).map(|s| s.1).collect();
        writeln!(yaml, "    agency_messages_instructions: {agency_messages:?}").unwrap();
        writeln!(yaml, "    inference_messages_instructions: {inference_messages:?}").unwrap();
        for (name, places) in layouts {
            let calls = workload(trace, &places);
            let outcome = simulate(&config, &calls);
            let per_round = outcome.sustained_calls_per_round();
            let [p50, p90, p99] = [50, 90, 99].map(|p| outcome.latency_percentile(&calls, p));
            eprintln!(
                "{:<44} {:>6} {:>8.2} {:>10.2} {:>5} {:>5} {:>5} {:>7}",
                format!("{}/{name}", trace.model),
                outcome.rounds,
                per_round,
                per_round * config.rounds_per_second,
                p50,
                p90,
                p99,
                outcome.aborted
            );
            writeln!(yaml, "    {name}:").unwrap();
            writeln!(yaml, "      calls: {}", calls.len()).unwrap();
            writeln!(yaml, "      rounds: {}", outcome.rounds).unwrap();
            writeln!(yaml, "      calls_per_round_sustained: {per_round:.2}").unwrap();
            writeln!(yaml, "      calls_per_round_overall: {:.2}", outcome.calls_per_round()).unwrap();
            writeln!(yaml, "      calls_per_second: {:.2}", per_round * config.rounds_per_second).unwrap();
            writeln!(yaml, "      latency_rounds: {{ p50: {p50}, p90: {p90}, p99: {p99} }}").unwrap();
            writeln!(yaml, "      aborted_long_executions: {}", outcome.aborted).unwrap();
        }
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench/throughput.yml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, yaml).unwrap();
    eprintln!("wrote {}", path.display());
}
