//! Every rule `#[traced]` checks beyond syntax, and the fallback that keeps one error from
//! becoming many. Each error points at the offending token.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::visit::Visit;
use syn::{Attribute, FnArg, Ident, Signature};

use crate::args::{KINDS, TracedArgs};

/// On error, emit the error AND the item unchanged: the user sees the one error the macro found,
/// not a cascade of "cannot find function" errors at every call site (thiserror's `fallback.rs`).
pub(crate) fn fallback(err: syn::Error, item: TokenStream) -> TokenStream {
    let mut out = err.to_compile_error();
    out.extend(item);
    out
}

/// Checks arguments on their own, wherever they are given.
pub(crate) fn check_args(args: &TracedArgs) -> syn::Result<()> {
    if let Some((_, lit)) = &args.name
        && lit.value().is_empty()
    {
        return Err(syn::Error::new_spanned(lit, "a span name cannot be empty"));
    }
    if let Some((_, v)) = &args.kind
        && !KINDS.contains(&v.to_string().as_str())
    {
        return Err(syn::Error::new_spanned(
            v,
            format!(
                "unknown span kind `{v}`; expected one of: {}",
                KINDS.join(", ")
            ),
        ));
    }
    if let Some((_, names)) = &args.args {
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(syn::Error::new_spanned(
                    n,
                    format!("`{n}` is listed twice in args(...)"),
                ));
            }
        }
    }
    if let Some((_, fields)) = &args.fields {
        for (i, f) in fields.iter().enumerate() {
            if f.key.is_empty() {
                return Err(syn::Error::new_spanned(
                    &f.key_tokens,
                    "a field name cannot be empty",
                ));
            }
            if fields[..i].iter().any(|g| g.key == f.key) {
                return Err(syn::Error::new_spanned(
                    &f.key_tokens,
                    format!("field `{}` is given twice", f.key),
                ));
            }
        }
    }
    Ok(())
}

/// Checks the arguments of an `impl` block: only those that apply to every method.
pub(crate) fn check_impl_args(args: &TracedArgs) -> syn::Result<()> {
    let misuse = |k: &dyn ToTokens, what: &str| {
        Err(syn::Error::new_spanned(
            k,
            format!(
                "`{what}` cannot be given on an impl block: put #[traced({what} ...)] on the method"
            ),
        ))
    };
    if let Some((k, _)) = &args.name {
        return misuse(k, "name");
    }
    if let Some((k, _)) = &args.args {
        return misuse(k, "args");
    }
    if let Some((k, _)) = &args.fields {
        return misuse(k, "fields");
    }
    if let Some(k) = &args.err {
        return misuse(k, "err");
    }
    if let Some(k) = &args.ret {
        return misuse(k, "ret");
    }
    if let Some(k) = &args.skip {
        return Err(syn::Error::new_spanned(
            k,
            "`skip` belongs on a method inside a #[traced] impl block, not on the block",
        ));
    }
    Ok(())
}

/// `true` for `#[traced]` or `#[some::path::traced(...)]`.
pub(crate) fn is_traced_attr(a: &Attribute) -> bool {
    a.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "traced")
}

/// A second `#[traced]` among the attributes left on an item that one `#[traced]` expands.
pub(crate) fn check_not_twice(attrs: &[Attribute]) -> syn::Result<()> {
    match attrs.iter().find(|a| is_traced_attr(a)) {
        Some(a) => Err(syn::Error::new_spanned(
            a,
            "#[traced] is given twice on this item: one span per call is all it records",
        )),
        None => Ok(()),
    }
}

/// Checks a free fn: `skip` only makes sense inside an impl block.
pub(crate) fn check_free_fn(args: &TracedArgs) -> syn::Result<()> {
    match &args.skip {
        Some(k) => Err(syn::Error::new_spanned(
            k,
            "`skip` only makes sense on a method inside a #[traced] impl block; \
             to leave this fn untraced, remove #[traced]",
        )),
        None => Ok(()),
    }
}

/// Checks a fn's signature and attributes against its arguments.
/// `hidden`: the parameters `#[async_trait]` renamed, with their patterns (see
/// `expand::hidden_params`), whose names `args` may give.
pub(crate) fn check_fn(
    sig: &Signature,
    attrs: &[Attribute],
    args: &TracedArgs,
    hidden: &[(Ident, syn::Pat)],
) -> syn::Result<()> {
    if let Some(c) = &sig.constness {
        return Err(syn::Error::new_spanned(
            c,
            "#[traced] cannot be used on a `const fn`: a span is a run-time effect",
        ));
    }
    if let Some(k) = &args.err {
        let not_a_result = match &sig.output {
            syn::ReturnType::Default => Some("nothing".to_owned()),
            syn::ReturnType::Type(_, ty) => match &**ty {
                syn::Type::Tuple(t) if t.elems.is_empty() => Some("`()`".to_owned()),
                syn::Type::ImplTrait(_) if returns_impl_future(sig) => None,
                syn::Type::ImplTrait(_) | syn::Type::Never(_) => {
                    Some(format!("`{}`", ty.to_token_stream()))
                }
                _ => None, // checked by type: an alias of `Result` has any name
            },
        };
        if let Some(what) = not_a_result {
            return Err(syn::Error::new_spanned(
                k,
                format!(
                    "`err` needs a fn that returns a `Result`; `{}` returns {what}",
                    sig.ident
                ),
            ));
        }
    }
    let track_caller = attrs.iter().find(|a| a.path().is_ident("track_caller"));
    let inspect = args
        .err
        .as_ref()
        .map(|k| (k.span, "err"))
        .or(args.ret.as_ref().map(|k| (k.span, "ret")));
    let sync = sig.asyncness.is_none() && !returns_impl_future(sig);
    if let (true, Some(_), Some((span, what))) = (sync, track_caller, inspect) {
        return Err(syn::Error::new(
            span,
            format!(
                "`{what}` cannot be used on a `#[track_caller]` fn: it inspects the return value \
                 through a closure, in which `Location::caller()` would no longer be the caller's"
            ),
        ));
    }
    if let (false, Some(a)) = (sync || sig.asyncness.is_some(), track_caller) {
        return Err(syn::Error::new_spanned(
            a,
            "#[traced] cannot be used on a `#[track_caller]` fn that returns `impl Future`: \
             the future is built in a closure (under the fn's span), in which \
             `Location::caller()` would no longer be the caller's (closures cannot be \
             `#[track_caller]` on stable Rust); remove `#[track_caller]` or `#[traced]`",
        ));
    }
    if let Some((_, names)) = &args.args {
        let params: Vec<Ident> = param_idents(sig)
            .into_iter()
            .flat_map(|p| match hidden.iter().find(|(h, _)| *h == p) {
                Some((_, pat)) => pat_idents(pat),
                None => vec![p],
            })
            .collect();
        for n in names {
            if !params.iter().any(|p| p == n) {
                let list = if params.is_empty() {
                    "this fn has no parameters".to_string()
                } else {
                    format!(
                        "its parameters are: {}",
                        params
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                return Err(syn::Error::new_spanned(
                    n,
                    format!(
                        "`{n}` in args(...) is not a parameter of `{}`; {list}",
                        sig.ident
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Every name a fn binds in its parameters (`self` included), in order.
pub(crate) fn param_idents(sig: &Signature) -> Vec<Ident> {
    let mut out = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => out.push(Ident::new("self", r.self_token.span)),
            FnArg::Typed(t) => out.extend(pat_idents(&t.pat)),
        }
    }
    out
}

/// Every name a pattern binds, in order.
pub(crate) fn pat_idents(pat: &syn::Pat) -> Vec<Ident> {
    struct Binder(Vec<Ident>);
    impl<'ast> Visit<'ast> for Binder {
        fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
            self.0.push(p.ident.clone());
            syn::visit::visit_pat_ident(self, p);
        }
    }
    let mut b = Binder(Vec::new());
    b.visit_pat(pat);
    b.0
}

/// `true` for `-> impl Future<...>` (possibly with `+ Send + 'a`).
pub(crate) fn returns_impl_future(sig: &Signature) -> bool {
    let syn::ReturnType::Type(_, ty) = &sig.output else {
        return false;
    };
    let syn::Type::ImplTrait(it) = &**ty else {
        return false;
    };
    it.bounds.iter().any(|b| match b {
        syn::TypeParamBound::Trait(t) => {
            t.path.segments.last().is_some_and(|s| s.ident == "Future")
        }
        _ => false,
    })
}

/// The name a type gives its methods' spans: `Foo` for `Foo<T>`, `a::Foo`, `&Foo`.
pub(crate) fn type_display_name(ty: &syn::Type) -> String {
    match ty {
        syn::Type::Path(p) => p.path.segments.last().map_or_else(
            || ty.to_token_stream().to_string(),
            |s| syn::ext::IdentExt::unraw(&s.ident).to_string(),
        ),
        syn::Type::Reference(r) => type_display_name(&r.elem),
        syn::Type::Paren(p) => type_display_name(&p.elem),
        syn::Type::Group(g) => type_display_name(&g.elem),
        // `dyn Trait` (`impl dyn Describe`): the words kept apart, punctuation not spaced.
        other => {
            let spaced = other.to_token_stream().to_string();
            let mut out = String::with_capacity(spaced.len());
            let words = |c: char| c.is_alphanumeric() || c == '_';
            let chars: Vec<char> = spaced.chars().collect();
            for (i, &c) in chars.iter().enumerate() {
                let between_words = c == ' '
                    && i > 0
                    && chars.get(i + 1).is_some_and(|&n| words(n))
                    && words(chars[i - 1]);
                if c != ' ' || between_words {
                    out.push(c);
                }
            }
            out
        }
    }
}
