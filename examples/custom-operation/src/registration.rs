//! Registration: the kind (declared on its operation), the table, the parameter and the node
//! parts, discoverable through `inventory` and exported as [`PLUGIN`].

use sonprop_core::{Isolation, NodeParts, ParamDecl, Parameter, Plugin, TableDecl, Watch};

use crate::{Announced, ExpirySource, NoticeTrigger, NoticeValidator, SonKeyExpiryNotice, KIND};

/// How far ahead of expiry a notice may be raised, in seconds (default 7 days).
#[derive(Parameter)]
#[parameter(name = "son_key_expiry_notice.window", value = u64, default = 7 * 24 * 3600, min = 1)]
pub struct NoticeWindow;

/// For explicit registration: `Registry::builder().with(&PLUGIN)`.
pub const PLUGIN: Plugin = Plugin {
    operations: &[SonKeyExpiryNotice::DESCRIPTOR],
    tables: &[TableDecl::of::<Announced>()],
    params: &[ParamDecl::of::<NoticeWindow>()],
    // The SONs know their own keys: the SON on duty proposes, every SON reviews. Each node
    // builds its trigger and validator from its own `ExpirySource` service.
    node: &[NodeParts {
        kind: KIND,
        watch: Watch::ElectedSons,
        trigger: Some(|node| Ok(Box::new(NoticeTrigger(node.service::<ExpirySource>()?)))),
        validator: Some(|node| Ok(Box::new(NoticeValidator(node.service::<ExpirySource>()?)))),
        isolation: Isolation::Thread,
    }],
    ..Plugin::new("sonprop-example-custom-operation")
};

sonprop_core::inventory::submit! { PLUGIN }
