//! A pool's router, for agencies: each call goes to the member the request's hash picks, and
//! when that member is busy, stopping (for an upgrade, say) or does not answer, to the next,
//! once around the pool. Classifying changes nothing but quotas, so a call that was refused or
//! lost on one member may safely run on another.
//!
//! Calls that name no version are **pinned to one file** per model name, known by its sha256
//! (members number their copies each in their own order): each goes to a member with that
//! member's version of the file, so one router's answers never mix two versions, even while a
//! pool switches versions member by member. The pin moves only at [`Router::refresh`] (called
//! at the first call for a name, and by the agency when it chooses), or when no member serves
//! the pinned file any more; it moves to the newest file that serves on the most members and is
//! active on one of them (see [`choose`]). A pool switch that keeps the old version enabled until
//! every member has activated the new one (`inference-cli pool activate`) never leaves a pinned
//! router without a member to answer.

use std::cell::RefCell;
use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use inference_api::{Classification, ClassifyRequest, InferenceError, ServingVersion};

use crate::{CallError, InferenceClient, Transport};

type Outcome = Result<Result<Classification, InferenceError>, CallError>;

/// The file a router's calls for one name go to, and each member's version of it (`None`: that
/// member does not serve it; calls skip it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    pub sha256: Vec<u8>,
    pub versions: Vec<Option<u32>>,
}

/// The members of a pool, each reached through its own transport.
pub struct Router<T> {
    members: Vec<InferenceClient<T>>,
    pins: RefCell<BTreeMap<String, Pin>>,
}

/// Whether another member may answer where this one did not: it refused for load or for a stop,
/// or the call itself failed (stopped canister, unreachable subnet, a full queue).
fn try_elsewhere(outcome: &Outcome) -> bool {
    matches!(
        outcome,
        Err(CallError::Rejected { .. })
            | Ok(Err(InferenceError::Busy { .. } | InferenceError::CallerBusy { .. } | InferenceError::Stopping))
    )
}

/// Whether the member no longer serves the version it was sent (deleted or disabled there).
fn pinned_file_gone(outcome: &Outcome) -> bool {
    matches!(outcome, Ok(Err(InferenceError::VersionNotServing { .. } | InferenceError::UnknownVersion { .. })))
}

/// The pin for one name, from what each member answered `serving_versions` (`None`: no answer).
/// Of the files that serve somewhere, the one that serves on the most members wins; among
/// those, one active on some member; then the newest (the highest version number on the first
/// member that serves it). `None` when nothing serves anywhere.
pub fn choose(serving: &[Option<Vec<ServingVersion>>]) -> Option<Pin> {
    let mut files: Vec<(Vec<u8>, usize, bool, u32)> = Vec::new(); // sha256, members, active, newest
    for versions in serving.iter().flatten() {
        for v in versions {
            match files.iter_mut().find(|f| f.0 == v.sha256) {
                Some(f) => {
                    f.1 += 1;
                    f.2 |= v.active;
                }
                None => files.push((v.sha256.clone(), 1, v.active, v.version)),
            }
        }
    }
    let (sha256, ..) = files.into_iter().max_by_key(|&(_, members, active, newest)| (members, active, newest))?;
    let versions = serving
        .iter()
        .map(|versions| versions.as_ref()?.iter().find(|v| v.sha256 == sha256).map(|v| v.version))
        .collect();
    Some(Pin { sha256, versions })
}

impl<T: Transport> Router<T> {
    /// A router over `members` (at least one).
    pub fn new(members: Vec<T>) -> Self {
        assert!(!members.is_empty(), "a pool has at least one member");
        Router { members: members.into_iter().map(InferenceClient::new).collect(), pins: RefCell::default() }
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

    /// The file calls for `name` are pinned to now, if any.
    pub fn pinned(&self, name: &str) -> Option<Pin> {
        self.pins.borrow().get(name).cloned()
    }

    /// Asks every member what serves `name` and pins the router to the file [`choose`] picks
    /// (a member that does not answer keeps its last known version of the pinned file). Answers
    /// the new pin; the old one stays when nothing serves anywhere.
    pub async fn refresh(&self, name: &str) -> Option<Pin> {
        let mut serving = Vec::with_capacity(self.members.len());
        for member in &self.members {
            serving.push(match member.serving_versions(name).await {
                Ok(Ok(versions)) => Some(versions),
                Ok(Err(_)) => Some(vec![]),
                Err(_) => None,
            });
        }
        let mut pin = choose(&serving)?;
        if let Some(old) = self.pinned(name).filter(|old| old.sha256 == pin.sha256) {
            for (version, (old_version, answered)) in pin.versions.iter_mut().zip(old.versions.iter().zip(&serving)) {
                if answered.is_none() {
                    *version = *old_version;
                }
            }
        }
        self.pins.borrow_mut().insert(name.to_string(), pin.clone());
        Some(pin)
    }

    /// `classify` on the member [`Router::first_member`] picks, then on each next one while the
    /// answer says another may do better; the last answer when none did. A request that names
    /// no version goes to the pinned file (see the module's documentation); one that names a
    /// version is sent as it is.
    pub async fn classify(&self, request: &ClassifyRequest) -> Outcome {
        if request.version.is_some() {
            return self.around(request, None).await;
        }
        let pin = match self.pinned(&request.model) {
            Some(pin) => Some(pin),
            None => self.refresh(&request.model).await,
        };
        let Some(pin) = pin else {
            // Nothing serves the name anywhere: the members' own refusal is the answer.
            return self.around(request, None).await;
        };
        let outcome = self.around(request, Some(&pin)).await;
        if !pinned_file_gone(&outcome) {
            return outcome;
        }
        match self.refresh(&request.model).await {
            Some(newer) if newer != pin => self.around(request, Some(&newer)).await,
            _ => outcome,
        }
    }

    /// Once around the members from the request's first, skipping those that do not serve the
    /// pinned file, each with its own version of it.
    async fn around(&self, request: &ClassifyRequest, pin: Option<&Pin>) -> Outcome {
        let first = self.first_member(request);
        let mut outcome = None;
        for step in 0..self.members.len() {
            let at = (first + step) % self.members.len();
            let version = match pin {
                Some(pin) => match pin.versions[at] {
                    Some(version) => Some(version),
                    None => continue,
                },
                None => request.version,
            };
            let sent = ClassifyRequest { version, ..request.clone() };
            let answer = self.members[at].classify(&sent).await;
            let go_on = try_elsewhere(&answer) || (pin.is_some() && pinned_file_gone(&answer));
            outcome = Some(answer);
            if !go_on {
                break;
            }
        }
        outcome.expect("a pin names at least one member that serves its file (see `choose`)")
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use inference_api::{InputTensor, ModelRef, TensorData};

    use super::*;

    /// A member that answers `classify` one way, counting the calls and the versions they name;
    /// and `serving_versions` with `serving`, or not at all.
    struct Member {
        answer: Result<Result<Classification, InferenceError>, String>,
        calls: Cell<u32>,
        versions_sent: RefCell<Vec<Option<u32>>>,
        serving: Option<Vec<ServingVersion>>,
    }

    impl Transport for &Member {
        async fn update(&self, _method: &str, arg: Vec<u8>) -> Result<Vec<u8>, String> {
            self.calls.set(self.calls.get() + 1);
            let request: ClassifyRequest = candid::decode_one(&arg).unwrap();
            self.versions_sent.borrow_mut().push(request.version);
            self.answer.clone().map(|a| candid::encode_one(a).unwrap())
        }
        async fn query(&self, method: &str, _arg: Vec<u8>) -> Result<Vec<u8>, String> {
            assert_eq!(method, "serving_versions");
            let serving = self.serving.clone().ok_or("unreachable")?;
            Ok(candid::encode_one(Ok::<_, inference_api::RegistryError>(serving)).unwrap())
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
            receipt: None,
        }
    }

    fn member(answer: Result<Result<Classification, InferenceError>, String>) -> Member {
        Member { answer, calls: Cell::new(0), versions_sent: RefCell::default(), serving: None }
    }

    fn serving(version: u32, file: u8, active: bool) -> ServingVersion {
        ServingVersion { version, sha256: vec![file; 32], active }
    }

    #[test]
    fn the_pin_is_the_newest_file_on_the_most_members_each_with_its_own_version_number() {
        // Mid-switch: A has file 2 active and file 1 enabled; B numbers its copies otherwise and
        // has not activated file 2 yet; C joined late and serves nothing; D does not answer.
        let a = Some(vec![serving(1, 1, false), serving(2, 2, true)]);
        let b = Some(vec![serving(4, 1, true), serving(5, 2, false)]);
        let pin = choose(&[a.clone(), b.clone(), Some(vec![]), None]).unwrap();
        assert_eq!(pin, Pin { sha256: vec![2; 32], versions: vec![Some(2), Some(5), None, None] });

        // A file on more members wins over a newer one on fewer.
        let c = Some(vec![serving(1, 1, true)]);
        let a_only_new = Some(vec![serving(1, 1, false), serving(2, 2, true)]);
        assert_eq!(choose(&[a_only_new, c.clone()]).unwrap().sha256, vec![1; 32]);
        // A file active somewhere wins over one only enabled.
        let enabled_only = Some(vec![serving(1, 1, true), serving(9, 3, false)]);
        assert_eq!(
            choose(&[enabled_only, Some(vec![serving(2, 1, true), serving(3, 3, false)])]).unwrap().sha256,
            vec![1; 32]
        );
        assert_eq!(choose(&[Some(vec![]), None]), None);
    }

    #[test]
    fn pinned_calls_carry_each_members_own_version_and_skip_members_without_the_file() {
        let with = |version, serving_list: Option<Vec<ServingVersion>>| Member {
            serving: serving_list,
            ..member(Ok(Ok(ok(&"x".repeat(version as usize)))))
        };
        let a = with(2, Some(vec![serving(1, 1, false), serving(2, 2, true)]));
        let b = with(5, Some(vec![serving(4, 1, true), serving(5, 2, false)]));
        let late = with(0, Some(vec![]));
        let router = Router::new(vec![&a, &b, &late]);
        for seed in 0..24 {
            ready(router.classify(&request(seed))).unwrap().unwrap();
        }
        assert_eq!(late.calls.get(), 0, "the late member serves nothing yet");
        assert!(a.versions_sent.borrow().iter().all(|v| *v == Some(2)), "{:?}", a.versions_sent);
        assert!(b.versions_sent.borrow().iter().all(|v| *v == Some(5)), "{:?}", b.versions_sent);
        assert_eq!(a.calls.get() + b.calls.get(), 24);
        assert!(a.calls.get() > 0 && b.calls.get() > 0);
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
