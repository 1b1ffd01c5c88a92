//! A model of how IC application subnets schedule messages, driven by the exact instruction
//! count of each message the replica executed: rounds, the subnet's execution threads, the
//! per-thread round budget, DTS slices and the cap on paused long executions, messages between
//! canisters of one subnet inducted between iterations of a round, and messages to another
//! subnet arriving rounds later. It answers what one canister, or several on one or two subnets,
//! serve per round and how many rounds each call waits.
//!
//! Modelled after the IC's scheduler (rs/execution_environment/src/scheduler.rs,
//! scheduler/round_schedule.rs) and its configuration for application subnets
//! (rs/config/src/subnet_config.rs, execution_environment.rs); the figures and what is left out
//! are listed in `tests/replica/docs/subnet-model.md`.

use std::collections::VecDeque;

/// The configuration of an application subnet's scheduler.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SubnetConfig {
    /// Execution threads (`NUMBER_OF_EXECUTION_THREADS`).
    pub threads: usize,
    /// Instructions a round may execute on one thread (`MAX_INSTRUCTIONS_PER_ROUND`).
    pub round_instructions: u64,
    /// A DTS slice (`MAX_INSTRUCTIONS_PER_SLICE`): a longer message pauses after each.
    pub slice_instructions: u64,
    /// Charged per message or slice executed (`INSTRUCTION_OVERHEAD_PER_EXECUTION`).
    pub overhead_per_message: u64,
    /// Charged per canister that executed in an iteration (`INSTRUCTION_OVERHEAD_PER_CANISTER`).
    pub overhead_per_canister: u64,
    /// Charged per canister of the subnet in each iteration
    /// (`INSTRUCTION_OVERHEAD_PER_CANISTER_FOR_FINALIZATION`).
    pub overhead_per_canister_finalization: u64,
    /// Paused long executions kept at the end of a round; the rest are aborted and start over
    /// (`MAX_PAUSED_EXECUTIONS`).
    pub max_paused: usize,
    /// Rounds between a round that sends a message to another subnet and the first round that
    /// can execute it (certification of the sender's state, then inclusion in a block).
    pub xnet_rounds: u64,
    /// Rounds per second ("a finalization rate of around 1 block per second").
    pub rounds_per_second: f64,
}

impl SubnetConfig {
    /// An application subnet as the IC configures it today.
    pub const APPLICATION: SubnetConfig = SubnetConfig {
        threads: 4,
        round_instructions: 4_000_000_000,
        slice_instructions: 2_000_000_000,
        overhead_per_message: 2_000_000,
        overhead_per_canister: 8_000_000,
        overhead_per_canister_finalization: 12_000,
        max_paused: 4,
        xnet_rounds: 2,
        rounds_per_second: 1.0,
    };

    /// What each thread may start to execute in a round: the round limit less a slice, plus one,
    /// so that a slice started with one instruction left still ends within the round
    /// (`execute_round`: "X <= R - S + 1").
    pub fn thread_budget(&self) -> i64 {
        self.round_instructions as i64 - self.slice_instructions as i64 + 1
    }
}

/// Where a message executes: a subnet and a canister on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Place {
    pub subnet: usize,
    pub canister: usize,
}

/// One call as the messages it causes, in order: each runs after the one before it has
/// finished (a request, the self-calls that continue it, the callback that replies), on the
/// canister the step names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The round in which it reaches its first canister.
    pub arrives: u64,
    pub steps: Vec<(Place, u64)>,
}

/// When each call finished, in rounds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Per call (in the order given): the round its last message finished in.
    pub finished: Vec<u64>,
    /// Long executions aborted (and started over) for want of a paused slot.
    pub aborted: u64,
    /// Rounds until every call finished.
    pub rounds: u64,
}

impl Outcome {
    /// Calls finished per round over the whole run.
    pub fn calls_per_round(&self) -> f64 {
        self.finished.len() as f64 / self.rounds.max(1) as f64
    }

    /// Calls finished per round once the first has finished, until the last: the rate the
    /// canisters sustain, without the rounds a call spends travelling before the first ends.
    pub fn sustained_calls_per_round(&self) -> f64 {
        let (Some(first), Some(last)) = (self.finished.iter().min(), self.finished.iter().max()) else { return 0.0 };
        self.finished.len() as f64 / (last - first + 1) as f64
    }

    /// The `p`-th percentile (0–100) of the rounds each call took, from arrival to its end
    /// (a call finished within its arrival round took 1).
    pub fn latency_percentile(&self, calls: &[Call], p: u32) -> u64 {
        let mut latencies: Vec<u64> =
            self.finished.iter().zip(calls).map(|(end, call)| end - call.arrives + 1).collect();
        latencies.sort_unstable();
        if latencies.is_empty() {
            return 0;
        }
        let rank = (p as usize * latencies.len()).div_ceil(100).max(1);
        latencies[rank - 1]
    }
}

/// A message waiting in a canister's queue, or paused between slices.
#[derive(Clone, Debug)]
struct Pending {
    call: usize,
    step: usize,
    /// Instructions still to execute (all of them again after an abort).
    left: u64,
}

struct CanisterState {
    place: Place,
    queue: VecDeque<Pending>,
    /// A long execution in progress: the canister runs nothing else meanwhile.
    paused: Option<Pending>,
    /// Finished a long execution this round: not scheduled again until the next.
    done_long_this_round: bool,
}

/// Runs `calls` on subnets configured as `config` until every call has finished.
///
/// Per round and subnet: messages that arrived are inducted; canisters with work are put on
/// the threads, long executions first, then the others in a rotating order (the IC orders by
/// accumulated priority, which over rounds gives every busy canister its turn: this model takes
/// turns without the arithmetic); each thread executes its canisters' messages until its budget
/// is spent; a message longer than a slice runs a slice per round; messages to canisters on the
/// same subnet are inducted for the next iteration of the same round, those to another subnet
/// `xnet_rounds` later; paused executions beyond `max_paused` are aborted at the end of the round.
pub fn simulate(config: &SubnetConfig, calls: &[Call]) -> Outcome {
    let mut places: Vec<Place> = calls.iter().flat_map(|c| c.steps.iter().map(|(p, _)| *p)).collect();
    places.sort_unstable();
    places.dedup();
    let subnets = places.iter().map(|p| p.subnet + 1).max().unwrap_or(0);
    let mut canisters: Vec<CanisterState> = places
        .iter()
        .map(|&place| CanisterState { place, queue: VecDeque::new(), paused: None, done_long_this_round: false })
        .collect();
    let index = |place: Place| places.binary_search(&place).expect("every place has a canister");
    // Messages in flight: (round from which they can execute, canister index, message).
    let mut in_flight: Vec<(u64, usize, Pending)> = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.steps.is_empty())
        .map(|(ix, c)| (c.arrives, index(c.steps[0].0), Pending { call: ix, step: 0, left: c.steps[0].1 }))
        .collect();
    let mut outcome = Outcome { finished: vec![u64::MAX; calls.len()], ..Default::default() };
    let mut remaining = calls.iter().filter(|c| !c.steps.is_empty()).count();
    for (ix, c) in calls.iter().enumerate() {
        if c.steps.is_empty() {
            outcome.finished[ix] = c.arrives;
        }
    }
    let mut round = 0u64;
    while remaining > 0 {
        // Induct what arrives by this round.
        in_flight.retain(|(at, canister, message)| {
            if *at <= round {
                canisters[*canister].queue.push_back(message.clone());
                false
            } else {
                true
            }
        });
        for subnet in 0..subnets {
            let members: Vec<usize> = (0..canisters.len()).filter(|&c| canisters[c].place.subnet == subnet).collect();
            let mut budget = config.thread_budget();
            loop {
                // Long executions first, then the rest, rotated by the round for fairness.
                let mut long: Vec<usize> = members.iter().copied().filter(|&c| canisters[c].paused.is_some()).collect();
                let mut new: Vec<usize> = members
                    .iter()
                    .copied()
                    .filter(|&c| {
                        let s = &canisters[c];
                        s.paused.is_none() && !s.queue.is_empty() && !s.done_long_this_round
                    })
                    .collect();
                if long.is_empty() && new.is_empty() {
                    break;
                }
                let shift = round as usize % new.len().max(1);
                new.rotate_left(shift);
                long.sort_unstable();
                // Long executions get threads in proportion to their share of the canisters with
                // work, of the subnet's compute capacity (threads − 1, in whole threads, rounded
                // up); all threads when nothing else waits (`apply_scheduling_strategy`). New work
                // goes round-robin on the others (at least one).
                let long_threads = if new.is_empty() {
                    long.len().min(config.threads)
                } else {
                    let capacity = (config.threads - 1) * long.len();
                    long.len().min(capacity.div_ceil(long.len() + new.len())).min(config.threads - 1)
                };
                let new_threads = config.threads - long_threads;
                let mut threads: Vec<Vec<usize>> = vec![Vec::new(); config.threads];
                for (i, c) in long.iter().enumerate() {
                    threads[i % long_threads.max(1)].push(*c);
                }
                for (i, c) in new.iter().enumerate() {
                    threads[long_threads + i % new_threads].push(*c);
                }
                let mut most_used = 0i64;
                let mut sent: Vec<(usize, Pending)> = Vec::new();
                for thread in &threads {
                    let mut left = budget;
                    for &c in thread {
                        if left <= 0 {
                            break;
                        }
                        let used_before = left;
                        let state = &mut canisters[c];
                        if let Some(mut paused) = state.paused.take() {
                            let slice = paused.left.min(config.slice_instructions);
                            paused.left -= slice;
                            left -= (slice + config.overhead_per_message) as i64;
                            if paused.left == 0 {
                                state.done_long_this_round = true;
                                finish_step(calls, paused, round, &mut outcome, &mut remaining, &mut sent, &index);
                            } else {
                                state.paused = Some(paused);
                            }
                        } else {
                            while left > 0 {
                                let Some(mut message) = state.queue.pop_front() else { break };
                                if message.left > config.slice_instructions {
                                    // Starts a long execution: one slice now, the rest in later rounds.
                                    message.left -= config.slice_instructions;
                                    left -= (config.slice_instructions + config.overhead_per_message) as i64;
                                    state.paused = Some(message);
                                    break;
                                }
                                left -= (message.left + config.overhead_per_message) as i64;
                                finish_step(calls, message, round, &mut outcome, &mut remaining, &mut sent, &index);
                            }
                        }
                        if left < used_before {
                            left -= config.overhead_per_canister as i64;
                        }
                    }
                    most_used = most_used.max(budget - left);
                }
                budget -= most_used + (config.overhead_per_canister_finalization * members.len() as u64) as i64;
                // Messages to this subnet's canisters are inducted for the next iteration; those
                // to another subnet travel.
                let mut progressed = most_used > 0;
                for (target, message) in sent {
                    if canisters[target].place.subnet == subnet {
                        canisters[target].queue.push_back(message);
                        progressed = true;
                    } else {
                        in_flight.push((round + config.xnet_rounds, target, message));
                    }
                }
                if !progressed || budget <= 0 {
                    break;
                }
            }
            // Paused executions beyond the cap start over later (the IC keeps those of the highest
            // priority; here, the first canisters).
            let mut kept = 0;
            for &c in &members {
                let state = &mut canisters[c];
                if let Some(paused) = state.paused.take() {
                    if kept < config.max_paused {
                        kept += 1;
                        state.paused = Some(paused);
                    } else {
                        outcome.aborted += 1;
                        let full = calls[paused.call].steps[paused.step].1;
                        state.queue.push_front(Pending { left: full, ..paused });
                    }
                }
                state.done_long_this_round = false;
            }
        }
        round += 1;
    }
    outcome.rounds = round;
    outcome
}

/// A message of `calls` finished in `round`: its call goes on to its next step, or ends.
fn finish_step(
    calls: &[Call],
    message: Pending,
    round: u64,
    outcome: &mut Outcome,
    remaining: &mut usize,
    sent: &mut Vec<(usize, Pending)>,
    index: &impl Fn(Place) -> usize,
) {
    let steps = &calls[message.call].steps;
    let next = message.step + 1;
    if next == steps.len() {
        outcome.finished[message.call] = round;
        *remaining -= 1;
    } else {
        sent.push((index(steps[next].0), Pending { call: message.call, step: next, left: steps[next].1 }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: u64 = 1_000_000_000;

    fn on(canister: usize) -> Place {
        Place { subnet: 0, canister }
    }

    fn backlog(canisters: usize, per_canister: usize, instructions: u64) -> Vec<Call> {
        (0..canisters * per_canister)
            .map(|i| Call { arrives: 0, steps: vec![(on(i % canisters), instructions)] })
            .collect()
    }

    #[test]
    fn one_canister_gets_one_thread_budget_per_round() {
        // 2 B + 1 per thread: a 1 B message leaves 997,999,999 (1 B + 2 M overhead), so a second
        // one starts and overshoots; 2 per round.
        let calls = backlog(1, 10, B);
        let outcome = simulate(&SubnetConfig::APPLICATION, &calls);
        assert_eq!(outcome.rounds, 5);
        assert_eq!(outcome.finished, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
    }

    #[test]
    fn canisters_scale_with_threads_then_saturate() {
        let rate = |n| simulate(&SubnetConfig::APPLICATION, &backlog(n, 40, B)).calls_per_round();
        assert_eq!(rate(1), 2.0);
        assert_eq!(rate(2), 4.0);
        assert_eq!(rate(4), 8.0);
        // Eight canisters share four threads: no more than four serve (less a little where
        // the last messages of a canister leave its thread idle).
        assert!(rate(8) <= 8.0 && rate(8) > 7.5, "{}", rate(8));
    }

    #[test]
    fn small_messages_fill_a_thread_within_its_budget() {
        // 100 M + 2 M each: 2,000,000,001 / 102 M = 19.6, so 20 start (the last overshoots).
        let outcome = simulate(&SubnetConfig::APPLICATION, &backlog(1, 40, 100_000_000));
        assert_eq!(outcome.finished.iter().filter(|&&r| r == 0).count(), 20);
    }

    #[test]
    fn a_long_message_runs_a_slice_per_round_and_at_most_four_wait_paused() {
        let config = SubnetConfig::APPLICATION;
        // 7 B: slices of 2 B in rounds 0, 1, 2 and 1 B in round 3.
        let outcome = simulate(&config, &backlog(1, 1, 7 * B));
        assert_eq!(outcome.finished, [3]);
        // Six canisters each start one: at most four stay paused, the others are aborted and
        // start over, so some finish well after the fastest.
        let outcome = simulate(&config, &backlog(6, 1, 7 * B));
        assert!(outcome.aborted > 0);
        assert_eq!(outcome.finished.iter().min(), Some(&3));
        assert!(*outcome.finished.iter().max().unwrap() >= 5, "{:?}", outcome.finished);
    }

    #[test]
    fn a_same_subnet_call_completes_in_the_round_and_another_subnet_takes_rounds() {
        let config = SubnetConfig::APPLICATION;
        let local = Call { arrives: 0, steps: vec![(on(0), 10_000_000), (on(1), B / 2), (on(0), 10_000_000)] };
        assert_eq!(simulate(&config, &[local]).finished, [0]);
        let far = Place { subnet: 1, canister: 0 };
        let remote = Call { arrives: 0, steps: vec![(on(0), 10_000_000), (far, B / 2), (on(0), 10_000_000)] };
        // Out in round 0, executed in round 2, the reply back in round 4.
        assert_eq!(simulate(&config, &[remote]).finished, [2 * config.xnet_rounds]);
    }

    #[test]
    fn latency_percentiles_count_rounds_from_arrival() {
        let calls = backlog(1, 10, B);
        let outcome = simulate(&SubnetConfig::APPLICATION, &calls);
        assert_eq!(outcome.latency_percentile(&calls, 50), 3);
        assert_eq!(outcome.latency_percentile(&calls, 100), 5);
    }
}
