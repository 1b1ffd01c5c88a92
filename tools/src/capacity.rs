//! Capacity planning: from one classification's measured cost on the canister (instructions and
//! messages), what one inference canister, and pools of several, serve per second on an
//! application subnet, and what that costs in cycles per classification and per day.
//!
//! The rates come from the subnet model ([`ic_cost_model::subnet`]: threads, round budgets, DTS
//! slices) over a backlog of calls; the cycles from the IC's fees ([`ic_cost_model::fees`]).

use ic_cost_model::fees::Fees;
use ic_cost_model::limits;
use ic_cost_model::subnet::{simulate, Call, Place, SubnetConfig};
use inference_api::{DType, InputTensor, TensorData, TensorSpec};

/// Calls waiting per canister in the simulated backlog: enough for a steady rate.
pub const BACKLOG_PER_CANISTER: usize = 1024;

/// One classification as the canister measured it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Measured {
    pub instructions: u64,
    pub messages: u32,
    /// Bytes of the call's argument and of its reply, which an agency canister's call pays for.
    pub request_bytes: u64,
    pub reply_bytes: u64,
}

/// What a pool of `canisters` serves on one subnet.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolCapacity {
    pub canisters: usize,
    pub per_second: f64,
    /// Rounds a call waits in the backlog's median and 99th percentile.
    pub latency_p50_rounds: u64,
    pub latency_p99_rounds: u64,
    /// Cycles the pool's canisters burn per day serving at that rate.
    pub cycles_per_day: u128,
}

/// A capacity plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub subnet_nodes: u32,
    /// Executing one classification (all its messages).
    pub execution_cycles: u128,
    /// What an agency canister's call adds: the request and reply crossing canisters.
    pub inter_canister_cycles: u128,
    pub pools: Vec<PoolCapacity>,
}

/// Plans for pools of each size in `pools`, on subnets of `subnet_nodes` nodes.
pub fn plan(measured: Measured, pools: &[usize], subnet_nodes: u32) -> Plan {
    let fees = Fees::new(subnet_nodes);
    let messages = measured.messages.max(1) as u64;
    // The canister splits an inference into messages of about equal size (its update budget).
    let per_message = measured.instructions.div_ceil(messages);
    let execution_cycles: u128 =
        (0..messages).map(|_| fees.execution_used(limits::UPDATE_INSTRUCTIONS, per_message)).sum();
    let inter_canister_cycles = fees.xnet_request(measured.request_bytes) + fees.xnet_response(measured.reply_bytes);
    let config = SubnetConfig::APPLICATION;
    let pools = pools
        .iter()
        .map(|&n| {
            let calls: Vec<Call> = (0..n.max(1) * BACKLOG_PER_CANISTER)
                .map(|i| Call {
                    arrives: 0,
                    steps: (0..messages).map(|_| (Place { subnet: 0, canister: i % n.max(1) }, per_message)).collect(),
                })
                .collect();
            let outcome = simulate(&config, &calls);
            let per_second = outcome.sustained_calls_per_round() * config.rounds_per_second;
            PoolCapacity {
                canisters: n,
                per_second,
                latency_p50_rounds: outcome.latency_percentile(&calls, 50),
                latency_p99_rounds: outcome.latency_percentile(&calls, 99),
                cycles_per_day: (per_second * 86_400.0) as u128 * execution_cycles,
            }
        })
        .collect();
    Plan { subnet_nodes, execution_cycles, inter_canister_cycles, pools }
}

/// A zero-filled input for each of `specs`, symbolic dimensions at `symbolic` (what `capacity`
/// measures with when the maintainer gives no shape).
pub fn zero_inputs(specs: &[TensorSpec], symbolic: u64) -> Vec<InputTensor> {
    specs
        .iter()
        .map(|spec| {
            let shape: Vec<u64> = spec.shape.iter().map(|&d| if d < 0 { symbolic } else { d as u64 }).collect();
            let n = shape.iter().product::<u64>() as usize;
            let data = match spec.dtype {
                // As clients send large f32 tensors (decoded at a byte an instruction).
                DType::F32 | DType::Other => TensorData::f32_bytes(&vec![0.0; n]),
                DType::F16 => TensorData::F16(vec![0; n]),
                DType::F64 => TensorData::F64(vec![0.0; n]),
                DType::I8 => TensorData::I8(vec![0; n]),
                DType::U8 => TensorData::U8(vec![0; n].into()),
                DType::I16 => TensorData::I16(vec![0; n]),
                DType::U16 => TensorData::U16(vec![0; n]),
                DType::I32 => TensorData::I32(vec![0; n]),
                DType::U32 => TensorData::U32(vec![0; n]),
                DType::I64 => TensorData::I64(vec![0; n]),
                DType::U64 => TensorData::U64(vec![0; n]),
                DType::Bool => TensorData::Bool(vec![false; n]),
                DType::Text => TensorData::Text(vec![String::new(); n]),
            };
            InputTensor { shape, data }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_model_scales_with_the_subnets_threads_and_costs_its_instructions() {
        let measured = Measured { instructions: 139_000_000, messages: 1, request_bytes: 30_000, reply_bytes: 200 };
        let plan = plan(measured, &[1, 4, 8], 13);
        // 5 M for the message and 1 per instruction on 13 nodes.
        assert_eq!(plan.execution_cycles, 5_000_000 + 139_000_000);
        // 260 K for the call and 1,000 per byte each way.
        assert_eq!(plan.inter_canister_cycles, 260_000 + 1_000 * 30_200);
        let rate: Vec<f64> = plan.pools.iter().map(|p| p.per_second).collect();
        // One canister: one thread's 2 B per round, ~14 of 141 M each.
        assert!((14.0..16.0).contains(&rate[0]), "{rate:?}");
        assert!(rate[1] > 3.8 * rate[0], "four canisters on four threads: {rate:?}");
        assert!(rate[2] <= rate[1] * 1.02, "eight canisters share the same four threads: {rate:?}");
        assert_eq!(plan.pools[0].cycles_per_day, (rate[0] * 86_400.0) as u128 * plan.execution_cycles);
        // A 34-node subnet charges 34/13 as much (each fee rounded down).
        let large = super::plan(measured, &[1], 34).execution_cycles;
        assert!(large.abs_diff(144_000_000u128 * 34 / 13) <= 1, "{large}");
    }

    #[test]
    fn zero_inputs_follow_the_declared_shapes_and_types() {
        let specs = [TensorSpec::new("ids", vec![1, -1], DType::I64), TensorSpec::new("x", vec![2, 3], DType::U8)];
        let inputs = zero_inputs(&specs, 16);
        assert_eq!(inputs[0].shape, [1, 16]);
        assert_eq!(inputs[0].data, TensorData::I64(vec![0; 16]));
        assert_eq!(inputs[1].data, TensorData::U8(vec![0; 6].into()));
    }
}
