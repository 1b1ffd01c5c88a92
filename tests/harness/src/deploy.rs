//! A deployment as an agency would have it: the inference canister, an agency canister allowed
//! to call it (with [`AGENCY_USER`] as its user and reader), a maintainer, models uploaded
//! through the maintainers' chunked uploader, and (for text models) the text front canister.

use std::cell::RefCell;

use agency_api::{Roles, Settings};
use candid::{CandidType, Principal};
use inference_api::{
    Config, FrontSettings, InitArgs, Kernels, ModelInfo, RoleError, TensorSpec, TextSpec, TextTask, Truncation,
    UploadRequest,
};
use inference_client::{calls, Call, CallError, InferenceClient, Transport};
use inference_tools::upload::{text_bundle, upload, UploadError, UploadOptions};
use serde::de::DeserializeOwned;

use crate::{canister_wasm, user, CallCost, Ic};

/// The tools' transport over an [`Ic`], as one principal talking to one canister.
pub struct IcTransport<'a> {
    pub ic: RefCell<&'a mut dyn Ic>,
    pub canister: Principal,
    pub sender: Principal,
}

impl Transport for IcTransport<'_> {
    async fn update(&self, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, String> {
        self.ic.borrow_mut().update_call(self.canister, self.sender, method, arg).result.map_err(|r| r.to_string())
    }
    async fn query(&self, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, String> {
        self.ic.borrow_mut().query_call(self.canister, self.sender, method, arg).result.map_err(|r| r.to_string())
    }
}

/// `user(AGENCY_USER)` is the agency canister's user (may call `decide`) and reader (may read
/// decisions) in every [`Deployment`].
pub const AGENCY_USER: u8 = 9;

pub struct Deployment {
    pub ic: Box<dyn Ic>,
    pub inference: Principal,
    pub agency: Principal,
    /// The text front canister of [`Deployment::inference`], once [`Deployment::install_text`]
    /// (or [`Deployment::publish_text`]) installed it; anonymous before.
    pub text: Principal,
    pub controller: Principal,
    pub maintainer: Principal,
}

/// The sha256 of every virtual memory of the inference canister's stable layout but the audit
/// log's (its state and segments), each with its id.
fn sha256_outside_the_audit_log(raw: Vec<u8>) -> [u8; 32] {
    use ic_stable_structures::memory_manager::{MemoryId, MemoryManager};
    use ic_stable_structures::{Memory, VectorMemory};
    use inference_engine::stable;
    use sha2::Digest;
    let audit =
        [stable::AUDIT_STATE, stable::AUDIT_INDEX_A, stable::AUDIT_DATA_A, stable::AUDIT_INDEX_B, stable::AUDIT_DATA_B];
    let manager = MemoryManager::init(VectorMemory::new(RefCell::new(raw)));
    let mut digest = sha2::Sha256::new();
    for id in (0..=254u8).filter(|&id| !audit.contains(&MemoryId::new(id))) {
        let memory = manager.get(MemoryId::new(id));
        let mut bytes = vec![0; (memory.size() * stable::WASM_PAGE) as usize];
        memory.read(0, &mut bytes);
        digest.update([id]);
        digest.update(&bytes);
    }
    digest.finalize().into()
}

impl Deployment {
    /// Installs both canisters on the backend the environment selects; the agency classifies
    /// with `model`.
    pub fn new(model: &str) -> Deployment {
        Self::with_backend(crate::backend(), model)
    }

    /// The same on a given backend.
    pub fn with_backend(ic: Box<dyn Ic>, model: &str) -> Deployment {
        Self::with_kernels(ic, model, Kernels::Best)
    }

    /// The same with the inference canister computing with `kernels` (the benchmarks' generic
    /// baseline).
    pub fn with_kernels(ic: Box<dyn Ic>, model: &str, kernels: Kernels) -> Deployment {
        Self::with_module(ic, model, kernels, &canister_wasm("inference_canister"))
    }

    /// The same with another build of the inference canister (e.g. an older one, to compare).
    pub fn with_module(mut ic: Box<dyn Ic>, model: &str, kernels: Kernels, inference_wasm: &[u8]) -> Deployment {
        let controller = user(1);
        let maintainer = user(3);
        let inference = ic.create_canister(controller);
        let init = Some(InitArgs { kernels: Some(kernels) });
        ic.install_canister(inference, inference_wasm, candid::encode_args((init,)).unwrap(), controller)
            .expect("inference canister installs");
        let anonymous = Principal::anonymous();
        let mut d = Deployment { ic, inference, agency: anonymous, text: anonymous, controller, maintainer };
        d.as_admin(calls::grant_maintainer(maintainer)).expect("grant maintainer");
        d.install_agency(model);
        d
    }

    /// Installs a new agency canister classifying with `model` (its controller is ours, its user
    /// and reader `user(AGENCY_USER)`), allows it to call the inference canister, and makes it
    /// [`Deployment::agency`].
    pub fn install_agency(&mut self, model: &str) -> Principal {
        let agency = self.ic.create_canister(self.controller);
        let settings = Settings {
            inference_canister: self.inference,
            model: model.to_string(),
            max_decisions: None,
            text_model: None,
            text_canister: None,
        };
        let roles = Roles { users: vec![user(AGENCY_USER)], readers: vec![user(AGENCY_USER)] };
        self.ic
            .install_canister(
                agency,
                &canister_wasm("agency_canister"),
                candid::encode_args((settings, Some(roles))).unwrap(),
                self.controller,
            )
            .expect("agency canister installs");
        self.as_admin(calls::allow_caller(agency)).expect("allow the agency");
        self.agency = agency;
        agency
    }

    /// Installs a text front canister for the inference canister `inference` (ours, or another
    /// pool member) and grants it the front role there, as their controller.
    pub fn install_front(&mut self, inference: Principal) -> Principal {
        let front = self.ic.create_canister(self.controller);
        let settings = FrontSettings { inference_canister: inference };
        self.ic
            .install_canister(
                front,
                &canister_wasm("text_canister"),
                candid::encode_args((settings,)).unwrap(),
                self.controller,
            )
            .expect("text canister installs");
        let controller = self.controller;
        crate::call(&mut *self.ic, inference, controller, calls::allow_front(front))
            .0
            .expect("allow_front replies")
            .expect("allow the front");
        front
    }

    /// [`Deployment::text`], installed the first time.
    pub fn install_text(&mut self) -> Principal {
        if self.text == Principal::anonymous() {
            self.text = self.install_front(self.inference);
        }
        self.text
    }

    /// A typed call to the text front canister as `sender` (see [`Deployment::install_text`]).
    pub fn call_text<R: CandidType + DeserializeOwned>(
        &mut self,
        sender: Principal,
        call: Call<R>,
    ) -> (Result<R, CallError>, CallCost) {
        crate::call(&mut *self.ic, self.text, sender, call)
    }

    /// A typed update of the text front canister made by canister `caller` (no
    /// inspect_message, as between canisters). `None` on a backend that cannot stand in for a
    /// canister's code.
    pub fn call_text_from_canister<R: CandidType + DeserializeOwned>(
        &mut self,
        caller: Principal,
        call: Call<R>,
    ) -> Option<Result<R, CallError>> {
        self.update_from_canister(self.text, caller, call)
    }

    /// An update of `target` made by canister `caller`, where the backend can stand in for one.
    fn update_from_canister<R: CandidType + DeserializeOwned>(
        &mut self,
        target: Principal,
        caller: Principal,
        call: Call<R>,
    ) -> Option<Result<R, CallError>> {
        let outcome = self.ic.call_from_canister(target, caller, call.method, call.arg.clone())?;
        Some(crate::reply(&call, outcome.result))
    }

    /// A typed call to the inference canister as `sender`: the reply and what the call cost.
    pub fn call<R: CandidType + DeserializeOwned>(
        &mut self,
        sender: Principal,
        call: Call<R>,
    ) -> (Result<R, CallError>, CallCost) {
        crate::call(&mut *self.ic, self.inference, sender, call)
    }

    /// A typed call to the inference canister made by canister `caller` (no inspect_message, as
    /// between canisters); queries as any query. `None` on a backend that cannot stand in for a
    /// canister's code.
    pub fn call_from_canister<R: CandidType + DeserializeOwned>(
        &mut self,
        caller: Principal,
        call: Call<R>,
    ) -> Option<Result<R, CallError>> {
        match call.mode {
            inference_client::Mode::Query => Some(self.call(caller, call).0),
            inference_client::Mode::Update => {
                let inference = self.inference;
                self.update_from_canister(inference, caller, call)
            }
        }
    }

    /// What the inference canister holds, as an admin sees it (registry, uploads, roles,
    /// settings) and, where the backend can read it, the sha256 of its stable memory but the
    /// audit log (which holds the jobs too): equal before and after a call that must change
    /// nothing but add its audit entry.
    pub fn state_fingerprint(&mut self) -> String {
        let admin = self.controller;
        let memory = self.ic.stable_memory(self.inference);
        let mut out = format!("{:?}\n", memory.map(sha256_outside_the_audit_log));
        let client = InferenceClient::new(IcTransport {
            ic: RefCell::new(&mut *self.ic),
            canister: self.inference,
            sender: admin,
        });
        let models = futures::executor::block_on(client.all_models()).expect("list").expect("admin lists");
        out += &format!("{models:?}\n");
        out += &format!("{:?}\n", self.call(admin, calls::uploads()).0.expect("uploads"));
        out += &format!("{:?}\n", self.call(admin, calls::roles()).0.expect("roles"));
        out += &format!("{:?}\n", self.call(admin, calls::config()).0.expect("config"));
        out
    }

    /// The agency canister's settings, as its controller reads them.
    pub fn agency_settings(&mut self) -> Settings {
        let controller = self.controller;
        self.call_agency(controller, agency_api::calls::settings())
            .0
            .expect("settings replies")
            .expect("an admin reads them")
    }

    /// A typed call to the agency canister as `sender`.
    pub fn call_agency<R: CandidType + DeserializeOwned>(
        &mut self,
        sender: Principal,
        call: Call<R>,
    ) -> (Result<R, CallError>, CallCost) {
        crate::call(&mut *self.ic, self.agency, sender, call)
    }

    /// A role change as the admin (the controller), e.g. `calls::allow_caller(who)`.
    pub fn as_admin(&mut self, call: Call<Result<(), RoleError>>) -> Result<(), RoleError> {
        let controller = self.controller;
        self.call(controller, call).0.expect("the role change replies")
    }

    /// Changes the inference canister's settings as its controller.
    pub fn configure(&mut self, change: impl FnOnce(&mut Config)) {
        let controller = self.controller;
        let mut config = self.call(controller, calls::config()).0.expect("config replies").expect("an admin reads it");
        change(&mut config);
        self.call(controller, calls::set_config(&config)).0.expect("set_config replies").expect("valid settings");
    }

    /// Upgrades the inference canister to this build, as its controller, with no argument.
    pub fn upgrade_inference(&mut self) {
        let wasm = canister_wasm("inference_canister");
        self.ic
            .upgrade_canister(self.inference, &wasm, candid::encode_args(()).unwrap(), self.controller)
            .expect("upgrade");
    }

    /// Sets the instructions an inference may use per message before continuing in a new one.
    pub fn set_budget(&mut self, budget: u64) {
        self.configure(|c| c.update_budget = budget);
    }

    /// Uploads `bytes` through the chunked uploader as `sender` (a version of `name` that already
    /// holds these bytes is the answer, and nothing is uploaded).
    pub fn upload_as(
        &mut self,
        sender: Principal,
        name: &str,
        bytes: &[u8],
        labels: Vec<String>,
        inputs: Option<Vec<TensorSpec>>,
        chunk_bytes: u32,
    ) -> Result<ModelInfo, UploadError> {
        self.upload_with(sender, name, bytes, labels, inputs, &Self::upload_options(chunk_bytes))
    }

    /// The options [`Deployment::upload_as`] uploads with: 3 chunks in flight, no retries.
    pub fn upload_options(chunk_bytes: u32) -> UploadOptions {
        UploadOptions { chunk_bytes, parallelism: 3, attempts: 1, ..Default::default() }
    }

    /// Uploads `bytes` through the chunked uploader as `sender`, with `options`.
    pub fn upload_with(
        &mut self,
        sender: Principal,
        name: &str,
        bytes: &[u8],
        labels: Vec<String>,
        inputs: Option<Vec<TensorSpec>>,
        options: &UploadOptions,
    ) -> Result<ModelInfo, UploadError> {
        self.upload_request(sender, bytes, Self::request(name, labels, inputs, None), options)
    }

    /// An upload's declaration; the uploader fills in size, sha256 and chunk size.
    pub fn request(
        name: &str,
        labels: Vec<String>,
        inputs: Option<Vec<TensorSpec>>,
        text: Option<TextSpec>,
    ) -> UploadRequest {
        UploadRequest {
            name: name.into(),
            size: 0,
            sha256: vec![],
            chunk_size: 0,
            description: String::new(),
            labels,
            inputs,
            text,
        }
    }

    /// Uploads `bytes` as `request` declares them through the chunked uploader as `sender`.
    pub fn upload_request(
        &mut self,
        sender: Principal,
        bytes: &[u8],
        request: UploadRequest,
        options: &UploadOptions,
    ) -> Result<ModelInfo, UploadError> {
        let client =
            InferenceClient::new(IcTransport { ic: RefCell::new(&mut *self.ic), canister: self.inference, sender });
        futures::executor::block_on(upload(&client, bytes, request, options, &()))
    }

    /// Uploads a text model and its tokenizer (`models/text/<file>`) as one bundle, as the
    /// maintainer, in 1 MiB chunks, and activates it; installs the text front
    /// ([`Deployment::install_text`]) if it is not yet.
    #[allow(clippy::too_many_arguments)]
    pub fn publish_text(
        &mut self,
        name: &str,
        model: &str,
        tokenizer: &str,
        max_tokens: u32,
        truncation: Truncation,
        task: TextTask,
        labels: &[&str],
    ) -> ModelInfo {
        let (bundle, spec) = text_bundle(
            &model_testdata::text::file(model),
            &model_testdata::text::file(tokenizer),
            max_tokens,
            truncation,
            task,
        );
        let labels = labels.iter().map(|s| s.to_string()).collect();
        let request = Self::request(name, labels, None, Some(spec));
        let maintainer = self.maintainer;
        let info = self.upload_request(maintainer, &bundle, request, &Self::upload_options(1 << 20)).expect("upload");
        self.call(maintainer, calls::activate(name, info.version)).0.expect("activate replies").expect("activate");
        self.install_text();
        info
    }

    /// Uploads a bundled model's test-case file as the maintainer and activates it.
    pub fn publish(&mut self, name: &str, case: &model_testdata::Case, labels: &[&str]) -> ModelInfo {
        let inputs = Some(crate::cases::specs(case));
        let info = self
            .upload_as(
                self.maintainer,
                name,
                &case.model,
                labels.iter().map(|s| s.to_string()).collect(),
                inputs,
                256 * 1024,
            )
            .expect("upload");
        let maintainer = self.maintainer;
        self.call(maintainer, calls::activate(name, info.version)).0.expect("activate replies").expect("activate");
        info
    }
}
