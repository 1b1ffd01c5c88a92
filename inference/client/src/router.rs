//! A pool's router, for agencies: each call goes to the member the request's hash picks, and
//! when that member is busy, stopping (for an upgrade, say) or does not answer, to the next,
//! once around the pool. Classifying changes nothing but quotas, so a call that was refused or
//! lost on one member may safely run on another.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use inference_api::{Classification, ClassifyRequest, InferenceError};

use crate::{CallError, InferenceClient, Transport};

/// The members of a pool, each reached through its own transport.
pub struct Router<T> {
    members: Vec<InferenceClient<T>>,
}

/// Whether another member may answer where this one did not: it refused for load or for a stop,
/// or the call itself failed (stopped canister, unreachable subnet, a full queue).
fn try_elsewhere(outcome: &Result<Result<Classification, InferenceError>, CallError>) -> bool {
    matches!(
        outcome,
        Err(CallError::Rejected { .. })
            | Ok(Err(InferenceError::Busy { .. } | InferenceError::CallerBusy { .. } | InferenceError::Stopping))
    )
}

impl<T: Transport> Router<T> {
    /// A router over `members` (at least one).
    pub fn new(members: Vec<T>) -> Self {
        assert!(!members.is_empty(), "a pool has at least one member");
        Router { members: members.into_iter().map(InferenceClient::new).collect() }
    }

    /// The member a request goes to first: the same request, the same member, spread evenly.
    pub fn first_member(&self, request: &ClassifyRequest) -> usize {
        let mut hasher = DefaultHasher::new();
        request.model.hash(&mut hasher);
        request.version.hash(&mut hasher);
        format!("{:?}", request.input.shape).hash(&mut hasher);
        candid::encode_one(&request.input).unwrap_or_default().hash(&mut hasher);
        (hasher.finish() % self.members.len() as u64) as usize
    }

    /// `classify` on the member [`Router::first_member`] picks, then on each next one while the
    /// answer says another may do better; the last answer when none did.
    pub async fn classify(
        &self,
        request: &ClassifyRequest,
    ) -> Result<Result<Classification, InferenceError>, CallError> {
        let first = self.first_member(request);
        let mut outcome = self.members[first].classify(request).await;
        for step in 1..self.members.len() {
            if !try_elsewhere(&outcome) {
                break;
            }
            outcome = self.members[(first + step) % self.members.len()].classify(request).await;
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use inference_api::{InputTensor, ModelRef, TensorData};

    use super::*;

    /// A member that answers one way and counts the calls it gets.
    struct Member {
        answer: Result<Result<Classification, InferenceError>, String>,
        calls: Cell<u32>,
    }

    impl Transport for &Member {
        async fn update(&self, _method: &str, _arg: Vec<u8>) -> Result<Vec<u8>, String> {
            self.calls.set(self.calls.get() + 1);
            self.answer.clone().map(|a| candid::encode_one(a).unwrap())
        }
        async fn query(&self, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, String> {
            self.update(method, arg).await
        }
    }

    fn ready<F: Future>(future: F) -> F::Output {
        match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(out) => out,
            Poll::Pending => panic!("the fake members answer at once"),
        }
    }

    fn ok(label: &str) -> Classification {
        Classification {
            labels: vec![],
            model: ModelRef { name: "m".into(), version: 1, sha256: vec![] },
            records: vec![],
            messages: 1,
            instructions: label.len() as u64,
        }
    }

    fn member(answer: Result<Result<Classification, InferenceError>, String>) -> Member {
        Member { answer, calls: Cell::new(0) }
    }

    fn request(seed: u8) -> ClassifyRequest {
        ClassifyRequest {
            model: "m".into(),
            version: None,
            input: InputTensor { shape: vec![1], data: TensorData::U8(vec![seed].into()) },
            top_k: None,
        }
    }

    #[test]
    fn a_busy_or_stopping_or_silent_member_passes_the_call_on_and_a_real_refusal_does_not() {
        let busy = member(Ok(Err(InferenceError::Busy { in_flight: 4, limit: 4 })));
        let stopping = member(Ok(Err(InferenceError::Stopping)));
        let stopped = member(Err("Canister is stopped".into()));
        let serving = member(Ok(Ok(ok("x"))));
        let router = Router::new(vec![&busy, &stopping, &stopped, &serving]);
        for seed in 0..8 {
            assert_eq!(ready(router.classify(&request(seed))).unwrap().unwrap(), ok("x"));
        }
        assert_eq!(serving.calls.get(), 8, "every call ends on the one member that serves");

        let refusing = member(Ok(Err(InferenceError::UnknownModel("m".into()))));
        let router = Router::new(vec![&refusing, &serving]);
        let first = (0..16).find(|&s| router.first_member(&request(s)) == 0).unwrap();
        let answer = ready(router.classify(&request(first))).unwrap();
        assert_eq!(answer, Err(InferenceError::UnknownModel("m".into())), "a refusal is the pool's answer");
    }

    #[test]
    fn requests_spread_over_the_members_and_the_same_request_goes_to_the_same_member() {
        let members: Vec<Member> = (0..4).map(|_| member(Ok(Ok(ok("x"))))).collect();
        let router = Router::new(members.iter().collect());
        for seed in 0..64 {
            ready(router.classify(&request(seed))).unwrap().unwrap();
            assert_eq!(router.first_member(&request(seed)), router.first_member(&request(seed)));
        }
        assert!(
            members.iter().all(|m| m.calls.get() >= 6),
            "{:?}",
            members.iter().map(|m| m.calls.get()).collect::<Vec<_>>()
        );
    }
}
