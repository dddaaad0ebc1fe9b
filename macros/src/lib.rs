//! Derive macros for sonprop operation crates, re-exported by `sonprop-core` beside the traits
//! they implement (`use sonprop_core::{ChainEvent, Parameter, TableKey};` brings both):
//!
//! - [`Parameter`][macro@Parameter]: a chain parameter's name, type, default and bounds, with
//!   its description taken from the doc comment.
//! - [`ChainEvent`][macro@ChainEvent]: an event's kind and name, and optionally its `Display`
//!   text as a format string over its fields.
//! - [`TableKey`][macro@TableKey]: a struct key encoded as the tuple of its fields, so its
//!   byte order is its field order.
//! - [`operation`][macro@operation]: on `impl Operation for T`, the kind declared once — name
//!   (its `kind`, its `typetag` registration), description, proposal policy and example.
//!
//! The generated code names `::sonprop_core`, so a crate using them depends on `sonprop-core`.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::{quote, ToTokens};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Attribute, Data, DeriveInput, Expr, Fields, Lit, Meta, Token};

/// `#[derive(Parameter)]` on a unit struct:
///
/// ```text
/// /// The lowest fee rate a proposal may carry, sat/vB.
/// #[derive(Parameter)]
/// #[parameter(name = "bitcoin.min_fee_rate", value = u64, default = 1, min = 1, max = 500)]
/// pub struct MinFeeRate;
/// ```
///
/// `name` (required, `<crate>.<parameter>`), `value` (the type, required), `default`
/// (required, an expression), `min` and `max` (bounds, each refused with the bound in words),
/// `check` (a `fn(&Value) -> Result<(), String>` run after the bounds) and `at_genesis` (a
/// `fn(&Value, &dyn GenesisView) -> Result<(), String>`). The description is `description`
/// when given (one line for a table of parameters), else the doc comment's first paragraph.
#[proc_macro_derive(Parameter, attributes(parameter))]
pub fn derive_parameter(input: TokenStream) -> TokenStream {
    expand(input, parameter)
}

/// `#[derive(ChainEvent)]` on an event struct:
///
/// ```text
/// #[derive(Serialize, Deserialize, ChainEvent)]
/// #[event(kind = WITHDRAW_PROCESS, name = "paying",
///         display = "withdrawal {withdrawal} to be paid by {txid} (sidechain tx {tx})")]
/// pub struct WithdrawalPaying { withdrawal: u64, tx: u64, txid: String }
/// ```
///
/// `kind` (an expression naming the kind's constant, or a string) and `name` (a string) are
/// required. `display`, a format string that names the struct's fields, also implements
/// `Display`; without it, the crate writes `Display` itself.
#[proc_macro_derive(ChainEvent, attributes(event))]
pub fn derive_chain_event(input: TokenStream) -> TokenStream {
    expand(input, chain_event)
}

/// `#[derive(TableKey)]` on a struct whose fields are table keys: encoded as the tuple of its
/// fields in declaration order, so keys sort by the first field, then the second, and so on.
#[proc_macro_derive(TableKey)]
pub fn derive_table_key(input: TokenStream) -> TokenStream {
    expand(input, table_key)
}

/// `#[operation(...)]` on a crate's `impl Operation for T` declares the kind once: its name,
/// its description, its proposal policy and an example.
///
/// ```text
/// #[sonprop_core::operation(
///     name = "son_key_expiry_notice",
///     description = "announce that a SON's sidechain key expires soon",
///     proposal = ProposalPolicy { son_record: true, eligible: Eligibility::WitnessOrSon,
///                                 lifetime: |s| s.witness_cycles_lifetime(3), readiness: None },
///     example = SonKeyExpiryNotice { son: SonId(3), sidechain: "bitcoin".into(), .. },
/// )]
/// impl Operation for SonKeyExpiryNotice { /* subject, authorities, check, apply */ }
/// ```
///
/// It writes `fn kind` (leave it out of the impl), registers the type with `typetag` under the
/// name (the crate depends on `typetag` and `serde`), and adds `T::KIND` and `T::DESCRIPTOR`
/// (the `OperationDescriptor` for the crate's `Plugin::operations`). `proposal` is left out for
/// a kind only ever sent directly.
#[proc_macro_attribute]
pub fn operation(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut imp = syn::parse_macro_input!(item as syn::ItemImpl);
    operation_impl(args.into(), &mut imp).unwrap_or_else(syn::Error::into_compile_error).into()
}

fn operation_impl(args: Tokens, imp: &mut syn::ItemImpl) -> syn::Result<Tokens> {
    let parsed = Punctuated::<syn::MetaNameValue, Token![,]>::parse_terminated.parse2(args)?;
    let mut p = Vec::new();
    for nv in parsed {
        p.push((nv.path.require_ident()?.clone(), nv.value));
    }
    let span = imp.self_ty.clone();
    let need = |p: &mut Vec<(syn::Ident, Expr)>, key: &str| {
        take(p, key).ok_or_else(|| {
            syn::Error::new_spanned(&span, format!("#[operation(...)] needs `{key} = ...`"))
        })
    };
    let name = need(&mut p, "name")?;
    let description = need(&mut p, "description")?;
    let example = need(&mut p, "example")?;
    let proposal = take(&mut p, "proposal");
    no_more(&p, "operation")?;
    let Some(kind) = string(&name) else {
        return Err(syn::Error::new_spanned(name, "`name` is a string"));
    };
    if string(&description).is_none() {
        return Err(syn::Error::new_spanned(description, "`description` is a string"));
    }
    match &imp.trait_ {
        Some((None, path, _)) if path.segments.last().is_some_and(|s| s.ident == "Operation") => {}
        _ => {
            return Err(syn::Error::new_spanned(
                &span,
                "#[operation] goes on `impl Operation for T`",
            ))
        }
    }
    let has_kind =
        imp.items.iter().any(|i| matches!(i, syn::ImplItem::Fn(f) if f.sig.ident == "kind"));
    if has_kind {
        return Err(syn::Error::new_spanned(
            &span,
            "`fn kind` comes from #[operation(name = ...)]: leave it out",
        ));
    }
    imp.items.insert(
        0,
        syn::parse_quote! {
            fn kind(&self) -> &'static str {
                #kind
            }
        },
    );
    imp.attrs.push(syn::parse_quote! { #[::typetag::serde(name = #kind)] });
    let ty = &imp.self_ty;
    let proposal = match proposal {
        Some(p) => quote! { ::core::option::Option::Some(#p) },
        None => quote! { ::core::option::Option::None },
    };
    Ok(quote! {
        #imp
        impl #ty {
            /// The operation kind.
            pub const KIND: &'static str = #kind;
            /// Its on-chain description, for the crate's `Plugin::operations`.
            pub const DESCRIPTOR: ::sonprop_core::OperationDescriptor =
                ::sonprop_core::OperationDescriptor {
                    name: #kind,
                    description: #description,
                    proposal: #proposal,
                    example: || ::std::boxed::Box::new(#example),
                };
        }
    })
}

fn expand(input: TokenStream, f: fn(&DeriveInput) -> syn::Result<Tokens>) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    f(&input).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// The `key = value` pairs of `#[name(...)]`.
fn pairs(attrs: &[Attribute], name: &str) -> syn::Result<Vec<(syn::Ident, Expr)>> {
    let mut out = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident(name)) {
        let list = attr.meta.require_list()?;
        let parsed = Punctuated::<syn::MetaNameValue, Token![,]>::parse_terminated
            .parse2(list.tokens.clone())?;
        for nv in parsed {
            let key = nv.path.require_ident()?.clone();
            if out.iter().any(|(k, _): &(syn::Ident, Expr)| *k == key) {
                return Err(syn::Error::new_spanned(&nv.path, format!("`{key}` given twice")));
            }
            out.push((key, nv.value));
        }
    }
    Ok(out)
}

/// Takes `key` out of `pairs`.
fn take(pairs: &mut Vec<(syn::Ident, Expr)>, key: &str) -> Option<Expr> {
    let i = pairs.iter().position(|(k, _)| k == key)?;
    Some(pairs.remove(i).1)
}

fn required(
    pairs: &mut Vec<(syn::Ident, Expr)>,
    key: &str,
    attr: &str,
    span: &DeriveInput,
) -> syn::Result<Expr> {
    take(pairs, key).ok_or_else(|| {
        syn::Error::new_spanned(&span.ident, format!("#[{attr}(...)] needs `{key} = ...`"))
    })
}

fn no_more(pairs: &[(syn::Ident, Expr)], attr: &str) -> syn::Result<()> {
    match pairs.first() {
        Some((k, _)) => Err(syn::Error::new_spanned(k, format!("#[{attr}(...)] has no `{k}`"))),
        None => Ok(()),
    }
}

/// A string literal's value.
fn string(e: &Expr) -> Option<String> {
    match e {
        Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => Some(s.value()),
        _ => None,
    }
}

/// The doc comment's first paragraph, on one line.
fn description(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("doc")) {
        if let Meta::NameValue(nv) = &attr.meta {
            if let Some(line) = string(&nv.value) {
                let line = line.trim().to_owned();
                if line.is_empty() && !lines.is_empty() {
                    break;
                }
                if !line.is_empty() {
                    lines.push(line);
                }
            }
        }
    }
    lines.join(" ")
}

fn parameter(input: &DeriveInput) -> syn::Result<Tokens> {
    let mut p = pairs(&input.attrs, "parameter")?;
    let name = required(&mut p, "name", "parameter", input)?;
    let value = required(&mut p, "value", "parameter", input)?;
    let default = required(&mut p, "default", "parameter", input)?;
    let (min, max) = (take(&mut p, "min"), take(&mut p, "max"));
    let (check, at_genesis) = (take(&mut p, "check"), take(&mut p, "at_genesis"));
    let given = take(&mut p, "description");
    no_more(&p, "parameter")?;
    if string(&name).is_none_or(|n| !n.contains('.')) {
        return Err(syn::Error::new_spanned(name, "`name` is a string `<crate>.<parameter>`"));
    }
    let description = match given {
        Some(d) => string(&d).ok_or_else(|| syn::Error::new_spanned(d, "a string"))?,
        None => description(&input.attrs),
    };
    if description.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "a parameter's doc comment is its description: write one",
        ));
    }
    let value: syn::Type = syn::parse2(value.to_token_stream())?;
    let ident = &input.ident;
    let (imp, ty, wh) = input.generics.split_for_impl();
    let min = min.map(|m| {
        quote! {
            if *v < #m {
                return ::core::result::Result::Err(::std::format!("must be at least {}", #m));
            }
        }
    });
    let max = max.map(|m| {
        quote! {
            if *v > #m {
                return ::core::result::Result::Err(::std::format!("must be at most {}", #m));
            }
        }
    });
    let check = check.map(|c| quote! { (#c)(v)?; });
    let at_genesis = at_genesis.map(|g| {
        quote! {
            fn validate_at_genesis(
                v: &#value,
                genesis: &dyn ::sonprop_core::GenesisView,
            ) -> ::core::result::Result<(), ::std::string::String> {
                (#g)(v, genesis)
            }
        }
    });
    Ok(quote! {
        impl #imp ::sonprop_core::Parameter for #ident #ty #wh {
            const NAME: &'static str = #name;
            const DESCRIPTION: &'static str = #description;
            type Value = #value;
            fn default_value() -> #value {
                #default
            }
            fn validate(v: &#value) -> ::core::result::Result<(), ::std::string::String> {
                #min
                #max
                #check
                let _ = v;
                ::core::result::Result::Ok(())
            }
            #at_genesis
        }
    })
}

fn chain_event(input: &DeriveInput) -> syn::Result<Tokens> {
    let mut p = pairs(&input.attrs, "event")?;
    let kind = required(&mut p, "kind", "event", input)?;
    let name = required(&mut p, "name", "event", input)?;
    let display = take(&mut p, "display");
    no_more(&p, "event")?;
    if string(&name).is_none() {
        return Err(syn::Error::new_spanned(name, "`name` is a string"));
    }
    let ident = &input.ident;
    let (imp, ty, wh) = input.generics.split_for_impl();
    let display = match display {
        None => None,
        Some(text) => {
            let Some(text) = string(&text) else {
                return Err(syn::Error::new_spanned(text, "`display` is a format string"));
            };
            let Data::Struct(data) = &input.data else {
                return Err(syn::Error::new_spanned(ident, "`display` needs a struct"));
            };
            let Fields::Named(fields) = &data.fields else {
                return Err(syn::Error::new_spanned(ident, "`display` needs named fields"));
            };
            let names: Vec<_> = fields.named.iter().filter_map(|f| f.ident.clone()).collect();
            Some(quote! {
                impl #imp ::core::fmt::Display for #ident #ty #wh {
                    #[allow(unused_variables)]
                    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                        let Self { #(#names),* } = self;
                        ::core::write!(f, #text)
                    }
                }
            })
        }
    };
    Ok(quote! {
        impl #imp ::sonprop_core::ChainEvent for #ident #ty #wh {
            const KIND: &'static str = #kind;
            const NAME: &'static str = #name;
        }
        #display
    })
}

fn table_key(input: &DeriveInput) -> syn::Result<Tokens> {
    let ident = &input.ident;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(ident, "TableKey is derived for structs"));
    };
    let (imp, ty, wh) = input.generics.split_for_impl();
    let types: Vec<_> = data.fields.iter().map(|f| &f.ty).collect();
    let (encode, decode) = match &data.fields {
        Fields::Named(fields) => {
            let names: Vec<_> = fields.named.iter().filter_map(|f| f.ident.clone()).collect();
            (
                quote! { #( ::sonprop_core::TableKey::encode_key(&self.#names, out); )* },
                quote! {
                    ::core::option::Option::Some(Self {
                        #( #names: <#types as ::sonprop_core::TableKey>::decode_key(input)?, )*
                    })
                },
            )
        }
        Fields::Unnamed(_) => {
            let index: Vec<_> = (0..types.len()).map(syn::Index::from).collect();
            (
                quote! { #( ::sonprop_core::TableKey::encode_key(&self.#index, out); )* },
                quote! {
                    ::core::option::Option::Some(Self(
                        #( <#types as ::sonprop_core::TableKey>::decode_key(input)?, )*
                    ))
                },
            )
        }
        Fields::Unit => {
            return Err(syn::Error::new_spanned(ident, "a unit struct holds no key"));
        }
    };
    Ok(quote! {
        impl #imp ::sonprop_core::TableKey for #ident #ty #wh {
            fn encode_key(&self, out: &mut ::std::vec::Vec<u8>) {
                #encode
            }
            fn decode_key(input: &mut &[u8]) -> ::core::option::Option<Self> {
                #decode
            }
        }
    })
}
