//! The decision records: a stable map from document id to decision, and the ids being decided
//! right now. Generic over the memory, so its rules are tested natively (`VectorMemory`).
//!
//! A `decide` reserves its id before it awaits the inference canister, so the first caller for
//! an id wins and a concurrent second one is refused with [`AgencyError::InProgress`]; the
//! reservation ends when the decision is recorded or the call fails. Reservations count against
//! the limit, so concurrent calls cannot exceed it together. They live on the heap on purpose:
//! an upgrade ends every call in flight (stop the canister first, and none is), so a
//! reservation kept in stable memory could outlive the call that made it and block the id
//! forever.

use std::collections::BTreeSet;
use std::ops::Bound;

use agency_api::{AgencyError, Decision, DecisionPage, MAX_PAGE};
use ic_stable_structures::{Memory, StableBTreeMap};

pub struct Store<M: Memory> {
    decisions: StableBTreeMap<String, Decision, M>,
    pending: BTreeSet<String>,
}

impl<M: Memory> Store<M> {
    /// The decisions kept in `memory` (empty if it is), with nothing in progress.
    pub fn init(memory: M) -> Self {
        Store { decisions: StableBTreeMap::init(memory), pending: BTreeSet::new() }
    }

    /// Reserves `id` for a decision: refused if it is decided, being decided, or if `limit`
    /// records (decided and in progress) are taken.
    pub fn reserve(&mut self, id: &str, limit: u64) -> Result<(), AgencyError> {
        if let Some(decision) = self.decisions.get(&id.to_string()) {
            let decision = Some(Box::new(decision));
            return Err(AgencyError::AlreadyDecided { document_id: id.into(), decision });
        }
        if self.pending.contains(id) {
            return Err(AgencyError::InProgress { document_id: id.into() });
        }
        if self.decisions.len() + self.pending.len() as u64 >= limit {
            return Err(AgencyError::StorageFull { limit });
        }
        self.pending.insert(id.into());
        Ok(())
    }

    /// Ends a reservation without a decision (the id can be decided again).
    pub fn release(&mut self, id: &str) {
        self.pending.remove(id);
    }

    /// Records the decision of a reserved id and ends its reservation. Never replaces a decision.
    pub fn record(&mut self, decision: Decision) -> Result<(), AgencyError> {
        let id = decision.document_id.clone();
        self.pending.remove(&id);
        if let Some(existing) = self.decisions.get(&id) {
            return Err(AgencyError::AlreadyDecided { document_id: id, decision: Some(Box::new(existing)) });
        }
        self.decisions.insert(id, decision);
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<Decision> {
        self.decisions.get(&id.to_string())
    }

    /// Decisions in id order after `after`: at most `limit`, capped to [`MAX_PAGE`] (0 asks for
    /// a full page). `next` is set when more follow.
    pub fn page(&self, after: Option<&str>, limit: u32) -> DecisionPage {
        let limit = if limit == 0 { MAX_PAGE } else { limit.min(MAX_PAGE) } as usize;
        let start = match after {
            Some(after) => Bound::Excluded(after.to_string()),
            None => Bound::Unbounded,
        };
        let mut entries = self.decisions.range((start, Bound::Unbounded));
        let decisions: Vec<Decision> = entries.by_ref().take(limit).map(|e| e.value()).collect();
        let more = decisions.len() == limit && entries.next().is_some();
        let next = if more { decisions.last().map(|d| d.document_id.clone()) } else { None };
        DecisionPage { decisions, next, total: self.decisions.len() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_stable_structures::VectorMemory;
    use inference_api::ModelRef;

    fn decision(id: &str) -> Decision {
        Decision {
            document_id: id.into(),
            label: "0".into(),
            score: 1.0,
            model: ModelRef { name: "m".into(), version: 1, sha256: vec![0; 32] },
            instructions: 1,
            messages: 1,
            decided_at_ns: 0,
            submitted_by: None,
            receipt: None,
        }
    }

    fn store() -> Store<VectorMemory> {
        Store::init(VectorMemory::default())
    }

    #[test]
    fn the_first_reservation_wins_until_it_is_recorded_or_released() {
        let mut s = store();
        s.reserve("a", 10).unwrap();
        assert_eq!(s.reserve("a", 10), Err(AgencyError::InProgress { document_id: "a".into() }));
        s.release("a");
        s.reserve("a", 10).unwrap();
        s.record(decision("a")).unwrap();
        let decided = AgencyError::AlreadyDecided { document_id: "a".into(), decision: Some(Box::new(decision("a"))) };
        assert_eq!(s.reserve("a", 10), Err(decided.clone()));
        // A late second record never replaces the first.
        let mut other = decision("a");
        other.label = "180".into();
        assert_eq!(s.record(other), Err(decided));
        assert_eq!(s.get("a"), Some(decision("a")));
    }

    #[test]
    fn reservations_count_against_the_limit_and_nothing_is_evicted() {
        let mut s = store();
        s.reserve("a", 2).unwrap();
        s.reserve("b", 2).unwrap();
        assert_eq!(s.reserve("c", 2), Err(AgencyError::StorageFull { limit: 2 }));
        s.record(decision("a")).unwrap();
        s.release("b");
        s.reserve("c", 2).unwrap();
        s.record(decision("c")).unwrap();
        assert_eq!(s.reserve("d", 2), Err(AgencyError::StorageFull { limit: 2 }));
        assert_eq!((s.get("a").is_some(), s.get("c").is_some()), (true, true));
    }

    #[test]
    fn pages_walk_every_decision_once_and_are_capped() {
        let mut s = store();
        let ids: Vec<String> = (0..250).map(|i| format!("doc-{i:04}")).collect();
        for id in &ids {
            s.reserve(id, 1000).unwrap();
            s.record(decision(id)).unwrap();
        }
        let mut seen = vec![];
        let mut after: Option<String> = None;
        loop {
            let page = s.page(after.as_deref(), 7);
            assert!(page.decisions.len() <= 7);
            assert_eq!(page.total, 250);
            seen.extend(page.decisions.iter().map(|d| d.document_id.clone()));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, ids);
        for limit in [0, MAX_PAGE + 1, u32::MAX] {
            assert_eq!(s.page(None, limit).decisions.len(), MAX_PAGE as usize);
        }
        // An exactly full last page has no `next`.
        let last = s.page(Some(&ids[149]), MAX_PAGE);
        assert_eq!((last.decisions.len(), last.next), (100, None));
        assert_eq!(s.page(Some("zzz"), 5).decisions, vec![]);
    }
}
