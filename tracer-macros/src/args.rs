//! `TracedArgs`: what `#[traced(...)]` accepts, and its parser. The parser checks only syntax
//! and that each argument is given once; every other rule is in `diagnostics`.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::ext::IdentExt as _;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, LitStr, Path, Token};

pub(crate) mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(kind);
    syn::custom_keyword!(args);
    syn::custom_keyword!(fields);
    syn::custom_keyword!(err);
    syn::custom_keyword!(ret);
    syn::custom_keyword!(root);
    syn::custom_keyword!(skip);
    syn::custom_keyword!(metrics);
}

/// Every argument `#[traced]` accepts, in the order the docs present them.
pub(crate) const ACCEPTED: &str = "name, kind, args, fields, err, ret, root, metrics, skip, crate";

/// The span kinds `kind = ...` accepts.
pub(crate) const KINDS: [&str; 5] = ["server", "client", "producer", "consumer", "internal"];

/// How a `fields(key = value)` value is recorded.
#[derive(Clone, Copy)]
pub(crate) enum Sigil {
    /// `key = expr`: converted with `IntoAttrValue`.
    Value,
    /// `key = ?expr`: recorded with `Debug`, capped.
    Debug,
    /// `key = %expr`: recorded with `Display`, capped.
    Display,
}

#[derive(Clone)]
pub(crate) struct Field {
    pub(crate) key: String,
    pub(crate) key_tokens: TokenStream,
    pub(crate) sigil: Sigil,
    pub(crate) value: Expr,
}

/// The parsed arguments. `Option<(Span-carrying token, value)>` keeps the token of each argument so
/// that later checks can point at it.
#[derive(Clone, Default)]
pub(crate) struct TracedArgs {
    pub(crate) name: Option<(kw::name, LitStr)>,
    pub(crate) kind: Option<(kw::kind, Ident)>,
    pub(crate) args: Option<(kw::args, Vec<Ident>)>,
    pub(crate) fields: Option<(kw::fields, Vec<Field>)>,
    pub(crate) err: Option<kw::err>,
    pub(crate) ret: Option<kw::ret>,
    pub(crate) root: Option<kw::root>,
    pub(crate) skip: Option<kw::skip>,
    pub(crate) metrics: Option<kw::metrics>,
    pub(crate) krate: Option<(Token![crate], Path)>,
}

/// Parses one argument into `slot`, with `parse`; the one check that an argument is given once.
/// A repeated argument is an error at its second keyword.
fn once<T>(
    input: ParseStream<'_>,
    slot: &mut Option<T>,
    what: &str,
    parse: impl FnOnce(ParseStream<'_>) -> syn::Result<T>,
) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            input.span(),
            format!("duplicate argument `{what}`"),
        ));
    }
    *slot = Some(parse(input)?);
    Ok(())
}

/// `kw = value`
fn kw_value<K: Parse, V>(
    input: ParseStream<'_>,
    value: impl FnOnce(ParseStream<'_>) -> syn::Result<V>,
) -> syn::Result<(K, V)> {
    let k = input.parse()?;
    input.parse::<Token![=]>()?;
    Ok((k, value(input)?))
}

/// `kw(item, item, ...)`
fn kw_list<K: Parse, V>(
    input: ParseStream<'_>,
    item: fn(ParseStream<'_>) -> syn::Result<V>,
) -> syn::Result<(K, Vec<V>)> {
    let k = input.parse()?;
    let content;
    syn::parenthesized!(content in input);
    let items: Punctuated<V, Token![,]> = content.parse_terminated(item, Token![,])?;
    Ok((k, items.into_iter().collect()))
}

impl Parse for TracedArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut out = TracedArgs::default();
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::name) {
                once(input, &mut out.name, "name", |i| {
                    kw_value(i, <LitStr as Parse>::parse)
                })?;
            } else if lookahead.peek(kw::kind) {
                once(input, &mut out.kind, "kind", |i| {
                    kw_value(i, <Ident as Parse>::parse)
                })?;
            } else if lookahead.peek(kw::args) {
                once(input, &mut out.args, "args", |i| {
                    kw_list(i, Ident::parse_any)
                })?;
            } else if lookahead.peek(kw::fields) {
                once(input, &mut out.fields, "fields", |i| {
                    kw_list(i, Field::parse)
                })?;
            } else if lookahead.peek(kw::err) {
                once(input, &mut out.err, "err", kw::err::parse)?;
            } else if lookahead.peek(kw::ret) {
                once(input, &mut out.ret, "ret", kw::ret::parse)?;
            } else if lookahead.peek(kw::root) {
                once(input, &mut out.root, "root", kw::root::parse)?;
            } else if lookahead.peek(kw::metrics) {
                once(input, &mut out.metrics, "metrics", kw::metrics::parse)?;
            } else if lookahead.peek(kw::skip) {
                once(input, &mut out.skip, "skip", kw::skip::parse)?;
            } else if lookahead.peek(Token![crate]) {
                once(input, &mut out.krate, "crate", |i| {
                    kw_value(i, Path::parse_mod_style)
                })?;
            } else if input.peek(Ident::peek_any) {
                let unknown: Ident = input.call(Ident::parse_any)?;
                return Err(syn::Error::new_spanned(
                    &unknown,
                    format!("unknown argument `{unknown}`; #[traced] accepts: {ACCEPTED}"),
                ));
            } else {
                return Err(lookahead.error());
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(out)
    }
}

impl Field {
    pub(crate) fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        // key: `"any.string"` or `ident(.ident)*`
        let (key, key_tokens) = if input.peek(LitStr) {
            let lit: LitStr = input.parse()?;
            (lit.value(), lit.to_token_stream())
        } else {
            let first: Ident = input.call(Ident::parse_any)?;
            // A raw identifier's name, without `r#` (`r#type` is `type`).
            let mut key = first.unraw().to_string();
            let mut tokens = first.to_token_stream();
            while input.peek(Token![.]) {
                let dot: Token![.] = input.parse()?;
                let next: Ident = input.call(Ident::parse_any)?;
                key.push('.');
                key.push_str(&next.unraw().to_string());
                dot.to_tokens(&mut tokens);
                next.to_tokens(&mut tokens);
            }
            (key, tokens)
        };
        input.parse::<Token![=]>()?;
        let sigil = if input.peek(Token![?]) {
            input.parse::<Token![?]>()?;
            Sigil::Debug
        } else if input.peek(Token![%]) {
            input.parse::<Token![%]>()?;
            Sigil::Display
        } else {
            Sigil::Value
        };
        let value: Expr = input.parse()?;
        Ok(Field {
            key,
            key_tokens,
            sigil,
            value,
        })
    }
}

impl TracedArgs {
    /// Arguments given on a method override those given on its `impl` block.
    pub(crate) fn merged_over(mut self, outer: &TracedArgs) -> TracedArgs {
        if self.kind.is_none() {
            self.kind.clone_from(&outer.kind);
        }
        if self.root.is_none() {
            self.root = outer.root;
        }
        if self.metrics.is_none() {
            self.metrics = outer.metrics;
        }
        if self.krate.is_none() {
            self.krate.clone_from(&outer.krate);
        }
        self
    }

    pub(crate) fn kind_variant(&self) -> Ident {
        let s = self
            .kind
            .as_ref()
            .map_or_else(|| "internal".to_string(), |(_, v)| v.to_string());
        let mut c = s.chars();
        let camel: String = match c.next() {
            Some(f) => f.to_uppercase().chain(c).collect(),
            None => String::new(),
        };
        Ident::new(&camel, Span::call_site())
    }
}
