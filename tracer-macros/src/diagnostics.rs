//! Validation, and the fallback that keeps one error from becoming many.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::visit::Visit;
use syn::{FnArg, Ident, Signature};

use crate::args::TracedArgs;

/// On error, emit the error AND the item unchanged: the user sees the one error the macro found,
/// not a cascade of "cannot find function" errors at every call site (thiserror's `fallback.rs`).
pub(crate) fn fallback(err: syn::Error, item: TokenStream) -> TokenStream {
    let mut out = err.to_compile_error();
    out.extend(item);
    out
}

/// Checks a fn's signature against its arguments.
pub(crate) fn check_fn(sig: &Signature, args: &TracedArgs) -> syn::Result<()> {
    if let Some(c) = &sig.constness {
        return Err(syn::Error::new_spanned(
            c,
            "#[traced] cannot be used on a `const fn`: a span is a run-time effect",
        ));
    }
    if let Some((_, names)) = &args.args {
        let params = param_idents(sig);
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
    struct Binder(Vec<Ident>);
    impl<'ast> Visit<'ast> for Binder {
        fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
            self.0.push(p.ident.clone());
            syn::visit::visit_pat_ident(self, p);
        }
    }
    let mut b = Binder(Vec::new());
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => b.0.push(Ident::new("self", r.self_token.span)),
            FnArg::Typed(t) => b.visit_pat(&t.pat),
        }
    }
    b.0
}

/// `true` when the return type mentions `impl Trait`, which cannot be written on a closure or a
/// `let`.
pub(crate) fn returns_impl_trait(sig: &Signature) -> bool {
    struct Finder(bool);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut f = Finder(false);
    if let syn::ReturnType::Type(_, ty) = &sig.output {
        f.visit_type(ty);
    }
    f.0
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
        syn::Type::Path(p) => p
            .path
            .segments
            .last()
            .map_or_else(|| ty.to_token_stream().to_string(), |s| s.ident.to_string()),
        syn::Type::Reference(r) => type_display_name(&r.elem),
        syn::Type::Paren(p) => type_display_name(&p.elem),
        syn::Type::Group(g) => type_display_name(&g.elem),
        other => other.to_token_stream().to_string().replace(' ', ""),
    }
}
