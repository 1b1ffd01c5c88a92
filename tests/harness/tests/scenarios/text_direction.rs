//! What the classification and agency scenarios start from: rapidocr's text-direction classifier
//! (f32, labels "0" and "180") published and active on a fresh deployment.

use canister_harness::deploy::Deployment;
use model_testdata::{case, Case};

pub const MODEL: &str = "text-direction";

/// A fresh deployment serving the model, and the bundled case whose onnxruntime outputs the
/// scenarios compare with.
pub fn deployed() -> (Deployment, Case) {
    let mut d = Deployment::new(MODEL);
    let c = case("rapidocr_cls", "fp32");
    d.publish(MODEL, &c, &["0", "180"]);
    (d, c)
}
