//! `Storable` for the records the engine keeps in stable memory: candid, whose encoding a
//! later version of a type can still decode as long as fields are only added as options.

use std::borrow::Cow;

use ic_stable_structures::storable::Bound;
use ic_stable_structures::Storable;

use crate::{Config, JobRecord, JobResult, ModelInfo, UploadRequest};

/// Implements [`Storable`] through candid, for records whose size is not bounded.
#[macro_export]
macro_rules! candid_storable {
    ($t:ty) => {
        impl ic_stable_structures::Storable for $t {
            fn to_bytes(&self) -> std::borrow::Cow<'_, [u8]> {
                std::borrow::Cow::Owned(candid::encode_one(self).expect("candid-encodable"))
            }
            fn into_bytes(self) -> Vec<u8> {
                candid::encode_one(&self).expect("candid-encodable")
            }
            fn from_bytes(bytes: std::borrow::Cow<'_, [u8]>) -> Self {
                candid::decode_one(&bytes).expect("stored by this canister")
            }
            const BOUND: ic_stable_structures::storable::Bound = ic_stable_structures::storable::Bound::Unbounded;
        }
    };
}

candid_storable!(ModelInfo);
candid_storable!(UploadRequest);
candid_storable!(JobResult);

/// Implements [`Storable`] through candid for a record whose older layout is still stored
/// somewhere: bytes that do not decode as today's type decode as the `legacy` one and convert.
macro_rules! candid_storable_with_legacy {
    ($t:ty, $legacy:ty) => {
        impl Storable for $t {
            fn to_bytes(&self) -> Cow<'_, [u8]> {
                Cow::Owned(candid::encode_one(self).expect("candid-encodable"))
            }

            fn into_bytes(self) -> Vec<u8> {
                candid::encode_one(&self).expect("candid-encodable")
            }

            fn from_bytes(bytes: Cow<'_, [u8]>) -> Self {
                candid::decode_one(&bytes)
                    .or_else(|_| candid::decode_one::<$legacy>(&bytes).map(<$t>::from))
                    .expect("stored by this canister")
            }

            const BOUND: Bound = Bound::Unbounded;
        }
    };
}

// Records written before the polling errors had a type of their own decode through
// [`legacy`], so an upgrade keeps every job its callers may still ask about.
candid_storable_with_legacy!(JobRecord, legacy::JobRecord);
// Settings saved before the per-caller quotas existed keep their values; the new settings take
// their defaults.
candid_storable_with_legacy!(Config, legacy::Config);

/// The job record as layout version 1 stored it: one error type for every endpoint, with the
/// polling states among its variants.
pub(crate) mod legacy {
    use candid::{CandidType, Deserialize, Principal};

    use crate::{InferenceError as Current, JobStatus as CurrentStatus, NotAuthorized, Role};

    /// The settings of layout version 1.
    #[derive(CandidType, Deserialize)]
    pub struct Config {
        pub update_budget: u64,
        pub query_budget: u64,
        pub max_jobs: u32,
        pub max_input_elements: u64,
    }

    impl From<Config> for crate::Config {
        fn from(old: Config) -> Self {
            crate::Config {
                update_budget: old.update_budget,
                query_budget: old.query_budget,
                max_jobs: old.max_jobs,
                max_input_elements: old.max_input_elements,
                ..crate::Config::default()
            }
        }
    }

    #[derive(CandidType, Deserialize)]
    pub enum InferenceError {
        NotAuthorized { caller: Principal },
        UnknownModel(String),
        UnknownVersion { name: String, version: u32 },
        InvalidInput(String),
        Busy { in_flight: u32, limit: u32 },
        Stopping,
        TooExpensiveForQuery { budget: u64 },
        Engine(String),
        CallFailed(String),
        UnknownJob(u64),
        Pending { steps_done: u32, steps_total: u32 },
        Cancelled,
        Interrupted(String),
    }

    #[derive(CandidType, Deserialize)]
    pub enum JobStatus {
        Running { steps_done: u32, steps_total: u32, messages: u32 },
        Done { expires_at_ns: u64 },
        Failed { error: InferenceError, expires_at_ns: u64 },
        Cancelled { expires_at_ns: u64 },
    }

    #[derive(CandidType, Deserialize)]
    pub struct JobRecord {
        pub owner: Principal,
        pub submitted_at_ns: u64,
        pub status: JobStatus,
    }

    impl From<JobRecord> for crate::JobRecord {
        fn from(old: JobRecord) -> Self {
            let status = match old.status {
                JobStatus::Running { steps_done, steps_total, messages } => {
                    CurrentStatus::Running { steps_done, steps_total, messages }
                }
                JobStatus::Done { expires_at_ns } => CurrentStatus::Done { expires_at_ns },
                JobStatus::Cancelled { expires_at_ns } => CurrentStatus::Cancelled { expires_at_ns },
                JobStatus::Failed { error: InferenceError::Interrupted(reason), expires_at_ns } => {
                    CurrentStatus::Interrupted { reason, expires_at_ns }
                }
                JobStatus::Failed { error, expires_at_ns } => {
                    CurrentStatus::Failed { error: error.into(), expires_at_ns }
                }
            };
            crate::JobRecord { owner: old.owner, submitted_at_ns: old.submitted_at_ns, status }
        }
    }

    impl From<InferenceError> for Current {
        fn from(old: InferenceError) -> Self {
            match old {
                InferenceError::NotAuthorized { caller } => {
                    Current::NotAuthorized(NotAuthorized { caller, needs: Role::Caller })
                }
                InferenceError::UnknownModel(name) => Current::UnknownModel(name),
                InferenceError::UnknownVersion { name, version } => Current::UnknownVersion { name, version },
                InferenceError::InvalidInput(why) => Current::InvalidInput(why),
                InferenceError::Busy { in_flight, limit } => Current::Busy { in_flight, limit },
                InferenceError::Stopping => Current::Stopping,
                InferenceError::TooExpensiveForQuery { budget } => Current::TooExpensiveForQuery { budget },
                InferenceError::Engine(why) | InferenceError::CallFailed(why) | InferenceError::Interrupted(why) => {
                    Current::Engine(why)
                }
                // Never stored as a job's failure; kept decodable all the same.
                InferenceError::UnknownJob(_) | InferenceError::Pending { .. } | InferenceError::Cancelled => {
                    Current::Engine("the job ended in a state this version no longer records".into())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InferenceError, JobStatus, NotAuthorized, Role};
    use candid::Principal;

    fn legacy_record(error: legacy::InferenceError) -> Vec<u8> {
        let status = legacy::JobStatus::Failed { error, expires_at_ns: 9 };
        candid::encode_one(legacy::JobRecord { owner: Principal::anonymous(), submitted_at_ns: 1, status }).unwrap()
    }

    #[test]
    fn job_records_of_layout_version_1_decode() {
        let interrupted =
            JobRecord::from_bytes(Cow::Owned(legacy_record(legacy::InferenceError::Interrupted("trap".into()))));
        assert_eq!(interrupted.status, JobStatus::Interrupted { reason: "trap".into(), expires_at_ns: 9 });
        let refused = JobRecord::from_bytes(Cow::Owned(legacy_record(legacy::InferenceError::NotAuthorized {
            caller: Principal::anonymous(),
        })));
        let needs = Role::Caller;
        let error = InferenceError::NotAuthorized(NotAuthorized { caller: Principal::anonymous(), needs });
        assert_eq!(refused.status, JobStatus::Failed { error, expires_at_ns: 9 });
        let current = JobRecord {
            owner: Principal::anonymous(),
            submitted_at_ns: 3,
            status: JobStatus::Cancelled { expires_at_ns: 4 },
        };
        assert_eq!(JobRecord::from_bytes(current.to_bytes()), current);
    }

    #[test]
    fn settings_of_layout_version_1_keep_their_values() {
        let old = legacy::Config { update_budget: 7_000_000_000, query_budget: 1, max_jobs: 3, max_input_elements: 9 };
        let config = crate::Config::from_bytes(Cow::Owned(candid::encode_one(old).unwrap()));
        assert_eq!((config.update_budget, config.query_budget, config.max_jobs), (7_000_000_000, 1, 3));
        assert_eq!(config.max_jobs_per_caller, crate::Config::default().max_jobs_per_caller);
        let current = crate::Config { max_jobs_per_caller: 2, ..crate::Config::default() };
        assert_eq!(crate::Config::from_bytes(current.to_bytes()), current);
    }
}
