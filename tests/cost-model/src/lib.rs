//! What the IC charges and how it schedules, shared by the local replica (which executes by
//! these rules) and the maintainers' CLI (which plans capacity with them): the IC's limits for
//! application subnets ([`limits`]), its fees ([`fees`]), and a model of how an application
//! subnet schedules messages across rounds and threads ([`subnet`]).

pub mod fees;
pub mod limits;
pub mod subnet;
