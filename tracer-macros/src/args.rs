//! `TracedArgs`: what `#[traced(...)]` accepts, and its parser.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
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

fn duplicate(token: &impl ToTokens, what: &str) -> syn::Error {
    syn::Error::new_spanned(token, format!("duplicate argument `{what}`"))
}

impl Parse for TracedArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut out = TracedArgs::default();
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::name) {
                let k: kw::name = input.parse()?;
                if out.name.is_some() {
                    return Err(duplicate(&k, "name"));
                }
                input.parse::<Token![=]>()?;
                let lit: LitStr = input.parse()?;
                if lit.value().is_empty() {
                    return Err(syn::Error::new_spanned(&lit, "a span name cannot be empty"));
                }
                out.name = Some((k, lit));
            } else if lookahead.peek(kw::kind) {
                let k: kw::kind = input.parse()?;
                if out.kind.is_some() {
                    return Err(duplicate(&k, "kind"));
                }
                input.parse::<Token![=]>()?;
                let v: Ident = input.parse()?;
                if !KINDS.contains(&v.to_string().as_str()) {
                    return Err(syn::Error::new_spanned(
                        &v,
                        format!(
                            "unknown span kind `{v}`; expected one of: {}",
                            KINDS.join(", ")
                        ),
                    ));
                }
                out.kind = Some((k, v));
            } else if lookahead.peek(kw::args) {
                let k: kw::args = input.parse()?;
                if out.args.is_some() {
                    return Err(duplicate(&k, "args"));
                }
                let content;
                syn::parenthesized!(content in input);
                let names: Punctuated<Ident, Token![,]> =
                    content.parse_terminated(Ident::parse_any, Token![,])?;
                let mut seen: Vec<Ident> = Vec::new();
                for n in names {
                    if seen.iter().any(|s| s == &n) {
                        return Err(syn::Error::new_spanned(
                            &n,
                            format!("`{n}` is listed twice in args(...)"),
                        ));
                    }
                    seen.push(n);
                }
                out.args = Some((k, seen));
            } else if lookahead.peek(kw::fields) {
                let k: kw::fields = input.parse()?;
                if out.fields.is_some() {
                    return Err(duplicate(&k, "fields"));
                }
                let content;
                syn::parenthesized!(content in input);
                let list: Punctuated<Field, Token![,]> =
                    content.parse_terminated(Field::parse, Token![,])?;
                let mut seen: Vec<Field> = Vec::new();
                for f in list {
                    if seen.iter().any(|s| s.key == f.key) {
                        return Err(syn::Error::new_spanned(
                            &f.key_tokens,
                            format!("field `{}` is given twice", f.key),
                        ));
                    }
                    seen.push(f);
                }
                out.fields = Some((k, seen));
            } else if lookahead.peek(kw::err) {
                let k: kw::err = input.parse()?;
                if out.err.is_some() {
                    return Err(duplicate(&k, "err"));
                }
                out.err = Some(k);
            } else if lookahead.peek(kw::ret) {
                let k: kw::ret = input.parse()?;
                if out.ret.is_some() {
                    return Err(duplicate(&k, "ret"));
                }
                out.ret = Some(k);
            } else if lookahead.peek(kw::root) {
                let k: kw::root = input.parse()?;
                if out.root.is_some() {
                    return Err(duplicate(&k, "root"));
                }
                out.root = Some(k);
            } else if lookahead.peek(kw::metrics) {
                let k: kw::metrics = input.parse()?;
                if out.metrics.is_some() {
                    return Err(duplicate(&k, "metrics"));
                }
                out.metrics = Some(k);
            } else if lookahead.peek(kw::skip) {
                let k: kw::skip = input.parse()?;
                if out.skip.is_some() {
                    return Err(duplicate(&k, "skip"));
                }
                out.skip = Some(k);
            } else if lookahead.peek(Token![crate]) {
                let k: Token![crate] = input.parse()?;
                if out.krate.is_some() {
                    return Err(duplicate(&k, "crate"));
                }
                input.parse::<Token![=]>()?;
                let path: Path = input.call(Path::parse_mod_style)?;
                out.krate = Some((k, path));
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

use syn::ext::IdentExt as _;

impl Field {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        // key: `"any.string"` or `ident(.ident)*`
        let (key, key_tokens) = if input.peek(LitStr) {
            let lit: LitStr = input.parse()?;
            if lit.value().is_empty() {
                return Err(syn::Error::new_spanned(
                    &lit,
                    "a field name cannot be empty",
                ));
            }
            (lit.value(), lit.to_token_stream())
        } else {
            let first: Ident = input.call(Ident::parse_any)?;
            let mut key = first.to_string();
            let mut tokens = first.to_token_stream();
            while input.peek(Token![.]) {
                let dot: Token![.] = input.parse()?;
                let next: Ident = input.call(Ident::parse_any)?;
                key.push('.');
                key.push_str(&next.to_string());
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

    /// The first argument that makes no sense on an `impl` block, if any.
    pub(crate) fn impl_level_misuse(&self) -> Option<syn::Error> {
        let msg = |what: &str| {
            format!(
                "`{what}` cannot be given on an impl block: put #[traced({what} ...)] on the method"
            )
        };
        if let Some((k, _)) = &self.name {
            return Some(syn::Error::new_spanned(k, msg("name")));
        }
        if let Some((k, _)) = &self.args {
            return Some(syn::Error::new_spanned(k, msg("args")));
        }
        if let Some((k, _)) = &self.fields {
            return Some(syn::Error::new_spanned(k, msg("fields")));
        }
        if let Some(k) = &self.err {
            return Some(syn::Error::new_spanned(k, msg("err")));
        }
        if let Some(k) = &self.ret {
            return Some(syn::Error::new_spanned(k, msg("ret")));
        }
        if let Some(k) = &self.skip {
            return Some(syn::Error::new_spanned(
                k,
                "`skip` belongs on a method inside a #[traced] impl block, not on the block",
            ));
        }
        None
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
