//! What a runner hosts: the stock crates (report-down and deregister-son, and the Bitcoin crate
//! for a scenario with a `[bitcoin]` table), plus any crate an author adds, with the services
//! its kinds need on each node. `sonprop` itself is [`Host::stock`]; a crate author gets the
//! whole command line (`simulate`, `explain`, `inspect`, `operations`) with their kinds from a
//! `main` of a few lines:
//!
//! ```no_run
//! use sonprop_simulator::host::Host;
//!
//! fn main() {
//!     let host = Host::discovered(); // every crate linked in that registers through inventory
//!     std::process::exit(host.main());
//! }
//! ```

use std::sync::Arc;

use sonprop_core::{NodeIdentity, Plugin, Registry, Services};

use crate::sim::NodeServices;

/// The stock crates, by name: always hosted (Bitcoin only with a `[bitcoin]` table).
const STOCK: [&str; 3] = ["sonprop-report-down", "sonprop-deregister-son", "sonprop-bitcoin"];

/// The crates a runner hosts, and their services.
#[derive(Clone, Default)]
pub struct Host {
    plugins: Vec<&'static Plugin>,
    services: Option<NodeServices>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.plugins.iter().map(|p| p.name).collect();
        f.debug_struct("Host").field("plugins", &names).finish_non_exhaustive()
    }
}

impl Host {
    /// The stock crates alone: what `sonprop` runs.
    pub fn stock() -> Host {
        Host::default()
    }

    /// The stock crates and every other crate linked into the binary that registered through
    /// `inventory` (`Registry::discover`'s list).
    pub fn discovered() -> Host {
        let mut host = Host::stock();
        let mut found: Vec<&'static Plugin> = sonprop_core::inventory::iter::<Plugin>
            .into_iter()
            .filter(|p| !STOCK.contains(&p.name))
            .collect();
        found.sort_by_key(|p| p.name);
        host.plugins = found;
        host
    }

    /// Hosts `plugin` too.
    pub fn with_plugin(mut self, plugin: &'static Plugin) -> Host {
        if !self.plugins.iter().any(|p| p.name == plugin.name) {
            self.plugins.push(plugin);
        }
        self
    }

    /// Gives each node the services `services` returns for it (the hosted crates' kinds ask
    /// their trigger's and validator's services of it).
    pub fn with_services(
        mut self,
        services: impl Fn(&NodeIdentity) -> Services + Send + Sync + 'static,
    ) -> Host {
        self.services = Some(Arc::new(services));
        self
    }

    /// The hosted crates beside the stock ones.
    pub fn plugins(&self) -> &[&'static Plugin] {
        &self.plugins
    }

    /// The nodes' services, if the hosted crates need any.
    pub fn services(&self) -> Option<NodeServices> {
        self.services.clone()
    }

    /// The registry a run uses: the stock crates, the Bitcoin crate if `bitcoin`, and the
    /// hosted ones.
    pub fn registry(&self, bitcoin: bool) -> Result<Registry, String> {
        let mut b = Registry::builder()
            .with(&sonprop_report_down::PLUGIN)
            .with(&sonprop_deregister_son::PLUGIN);
        if bitcoin {
            b = b.with(&sonprop_bitcoin::PLUGIN);
        }
        for p in &self.plugins {
            b = b.with(p);
        }
        b.build().map_err(|e| e.to_string())
    }

    /// Runs the command line of this process with the hosted crates: what a `main` returns as
    /// its exit code.
    pub fn main(&self) -> i32 {
        use std::io::IsTerminal;
        let args: Vec<String> = std::env::args().skip(1).collect();
        let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
        let bar = stderr.is_terminal();
        crate::cli::run_hosted(self, &args, &mut stdout.lock(), &mut stderr.lock(), bar)
    }
}
