//! The rewrites: `gen_sync`, `gen_async`, `gen_impl_future`, `gen_boxed_async` and the impl block.
//!
//! Only the body is rewritten, never the signature's types (the parameters' patterns, when the
//! body runs in an async block or a closure: see `move_params`). The user's tokens keep their
//! spans, so an error inside a traced fn still points at the user's line.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt as _;
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{Block, Expr, FnArg, ImplItem, Item, ItemFn, ItemImpl, Pat, ReturnType, Signature, Stmt};

use crate::args::{Sigil, TracedArgs};
use crate::diagnostics::{self, fallback};

pub(crate) fn traced(args: TokenStream, item: TokenStream) -> TokenStream {
    let args: TracedArgs = match syn::parse2(args).and_then(|a| {
        diagnostics::check_args(&a)?;
        Ok(a)
    }) {
        Ok(a) => a,
        Err(e) => return fallback(e, item),
    };
    let parsed: Item = match syn::parse2(item.clone()) {
        Ok(i) => i,
        Err(e) => return fallback(e, item),
    };
    let result = match parsed {
        Item::Fn(f) => traced_fn(f, &args),
        Item::Impl(i) => traced_impl(i, &args),
        other => Err(not_a_fn(&other)),
    };
    match result {
        Ok(ts) => ts,
        Err(e) => fallback(e, item),
    }
}

fn not_a_fn(item: &Item) -> syn::Error {
    let msg =
        "#[traced] can only be used on a fn (free fn, method, trait impl method) or an impl block";
    match item {
        Item::Struct(s) => syn::Error::new_spanned(s.struct_token, msg),
        Item::Enum(e) => syn::Error::new_spanned(e.enum_token, msg),
        Item::Union(u) => syn::Error::new_spanned(u.union_token, msg),
        Item::Trait(t) => syn::Error::new_spanned(t.trait_token, msg),
        Item::Mod(m) => syn::Error::new_spanned(m.mod_token, msg),
        Item::Const(c) => syn::Error::new_spanned(c.const_token, msg),
        Item::Static(s) => syn::Error::new_spanned(s.static_token, msg),
        Item::Type(t) => syn::Error::new_spanned(t.type_token, msg),
        Item::Use(u) => syn::Error::new_spanned(u.use_token, msg),
        Item::Verbatim(v) if v.to_string().contains("fn") => syn::Error::new_spanned(
            v,
            "#[traced] needs a fn with a body; on a trait, put it on the impls' methods",
        ),
        other => syn::Error::new_spanned(other, msg),
    }
}

fn traced_fn(mut f: ItemFn, args: &TracedArgs) -> syn::Result<TokenStream> {
    diagnostics::check_not_twice(&f.attrs)?;
    diagnostics::check_free_fn(args)?;
    diagnostics::check_fn(&f.sig, &f.attrs, args, &hidden_params(&f.sig, &f.block))?;
    let name = args
        .name
        .as_ref()
        .map_or_else(|| f.sig.ident.unraw().to_string(), |(_, l)| l.value());
    *f.block = rewrite(&mut f.sig, &f.block, args, &name)?;
    Ok(quote!(#f))
}

fn traced_impl(mut imp: ItemImpl, outer: &TracedArgs) -> syn::Result<TokenStream> {
    diagnostics::check_not_twice(&imp.attrs)?;
    diagnostics::check_impl_args(outer)?;
    let ty_name = diagnostics::type_display_name(&imp.self_ty);
    for item in &mut imp.items {
        let ImplItem::Fn(m) = item else { continue };
        // A method's own #[traced(...)] refines the block's.
        let mut own: Option<TracedArgs> = None;
        let mut kept = Vec::with_capacity(m.attrs.len());
        for a in std::mem::take(&mut m.attrs) {
            if diagnostics::is_traced_attr(&a) {
                if own.is_some() {
                    return Err(syn::Error::new_spanned(
                        &a,
                        "#[traced] is given twice on this method",
                    ));
                }
                let parsed = match &a.meta {
                    syn::Meta::Path(_) => TracedArgs::default(),
                    syn::Meta::List(l) => {
                        let args = syn::parse2::<TracedArgs>(l.tokens.clone())?;
                        diagnostics::check_args(&args)?;
                        args
                    }
                    syn::Meta::NameValue(nv) => {
                        return Err(syn::Error::new_spanned(
                            nv,
                            "expected #[traced] or #[traced(...)]",
                        ));
                    }
                };
                own = Some(parsed);
            } else {
                kept.push(a);
            }
        }
        m.attrs = kept;
        let own_given = own.is_some();
        let args = own.unwrap_or_default();
        if args.skip.is_some() {
            continue;
        }
        if m.sig.constness.is_some() && !own_given {
            // A const fn cannot carry a span; the block-level attribute leaves it alone.
            continue;
        }
        let args = args.merged_over(outer);
        diagnostics::check_fn(&m.sig, &m.attrs, &args, &hidden_params(&m.sig, &m.block))?;
        let name = args.name.as_ref().map_or_else(
            || format!("{ty_name}::{}", m.sig.ident.unraw()),
            |(_, l)| l.value(),
        );
        m.block = rewrite(&mut m.sig, &m.block, &args, &name)?;
    }
    Ok(quote!(#imp))
}

/// Generated locals, with mixed-site hygiene: a user's parameter named like one of them still
/// means the user's parameter.
fn local(name: &str) -> proc_macro2::Ident {
    proc_macro2::Ident::new(name, Span::mixed_site())
}

/// [`local`], reported at `at` in diagnostics.
fn local_at(name: &str, at: Span) -> proc_macro2::Ident {
    proc_macro2::Ident::new(name, Span::mixed_site().located_at(at))
}

/// `tokens` with every span set to `span`: generated code that a diagnostic reports at a token
/// of the user's.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let proc_macro2::TokenTree::Group(g) = &tt {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                tt = proc_macro2::TokenTree::Group(group);
            } else {
                tt.set_span(span);
            }
            tt
        })
        .collect()
}

/// The path to the runtime's seam.
fn private_path(args: &TracedArgs) -> TokenStream {
    match &args.krate {
        Some((_, path)) => quote!(#path::__private),
        None => quote!(::tracer_runtime::__private),
    }
}

/// Declares `__TRACER_META` and starts `__tracer_span: Option<Live>`. The switch check comes first:
/// when tracing is off this is one relaxed load and a branch.
/// The call site's constants and its span: started (`__tracer_span`, an `Option<Live>`), or,
/// given `guard`, started current under that name (a `SyncGuard`).
fn prelude(
    p: &TokenStream,
    args: &TracedArgs,
    name: &str,
    guard: Option<&proc_macro2::Ident>,
    binds: &TokenStream,
) -> TokenStream {
    let (n_span, n_attrs) = (local("__tracer_span"), local("__tracer_attrs"));
    let mut stmts = Vec::new();
    if let Some((_, names)) = &args.args {
        for n in names {
            let key = n.unraw().to_string();
            stmts.push(quote!(#n_attrs.debug(#key, &#n);));
        }
    }
    if let Some((_, fields)) = &args.fields {
        for f in fields {
            let key = &f.key;
            let v = &f.value;
            stmts.push(match f.sigil {
                // A string literal is kept as it is (no copy); any other `&str` is copied.
                Sigil::Value
                    if matches!(
                        v,
                        Expr::Lit(syn::ExprLit {
                            lit: syn::Lit::Str(_),
                            ..
                        })
                    ) =>
                {
                    quote!(#n_attrs.value(#key, #p::StaticStr(#v));)
                }
                // A place (a parameter, a field, an element) is borrowed and its value copied,
                // so that the body keeps it; any other expression is a temporary, taken as it is.
                Sigil::Value if is_place(v) => quote!(#n_attrs.value(#key, &(#v));),
                Sigil::Value => quote!(#n_attrs.value(#key, #v);),
                Sigil::Debug => quote!(#n_attrs.debug(#key, &(#v));),
                Sigil::Display => quote!(#n_attrs.display(#key, &(#v));),
            });
        }
    }
    let fill = if stmts.is_empty() {
        quote!(#p::no_attrs)
    } else {
        // The list allocated once, at its size (grown push by push, it was reallocated).
        let n = stmts.len();
        quote!(|#n_attrs: &mut #p::Attrs| { #n_attrs.reserve(#n); #binds #(#stmts)* })
    };
    let meta = meta_static(p, args, name);
    match guard {
        // A sync body run as written: the span is started current, in its place on the
        // thread's stack.
        Some(n_guard) => {
            let start = if stmts.is_empty() {
                quote!(#p::SyncGuard::start_bare(&__TRACER_META))
            } else {
                quote!(#p::SyncGuard::start(&__TRACER_META, #fill))
            };
            quote! {
                #meta
                let #n_guard = if #p::on() {
                    #start
                } else {
                    #p::SyncGuard::off()
                };
            }
        }
        None => quote! {
            #meta
            #[allow(unused_mut)]
            let mut #n_span: ::core::option::Option<#p::Live> = if #p::on() {
                #p::start(&__TRACER_META, #fill)
            } else {
                ::core::option::Option::None
            };
        },
    }
}

/// `true` for an expression that names a place (`user`, `req.name`, `names[0]`, `*counter`):
/// taken by value, it would move out of (or fail to move out of) the caller's variable.
fn is_place(e: &Expr) -> bool {
    match e {
        Expr::Path(_) | Expr::Field(_) | Expr::Index(_) => true,
        Expr::Unary(u) => matches!(u.op, syn::UnOp::Deref(_)),
        Expr::Paren(p) => is_place(&p.expr),
        Expr::Group(g) => is_place(&g.expr),
        _ => false,
    }
}

/// `static __TRACER_META`: the call site's constants.
fn meta_static(p: &TokenStream, args: &TracedArgs, name: &str) -> TokenStream {
    let kind = args.kind_variant();
    let root = args.root.is_some();
    let with_metrics = args.metrics.map(|_| quote!(.with_metrics()));
    quote! {
        static __TRACER_META: #p::Meta = #p::Meta::new(#name, #p::SpanKind::#kind, #root)#with_metrics;
    }
}

/// The callback run on the fn's output before the span ends (`err`, `ret`).
fn on_done(p: &TokenStream, args: &TracedArgs) -> TokenStream {
    let (n_live, n_out) = (local("__tracer_live"), local("__tracer_out"));
    let (n_e, n_v) = (local("__tracer_e"), local("__tracer_v"));
    let record_err = |kw_span: Span| {
        let (n_e, n_live) = (&n_e, &n_live);
        // A type error here (an error type that is not `Display`) is reported at `err`.
        let p = respan(p.clone(), kw_span);
        quote_spanned! {kw_span=>
            {
                #[allow(unused_imports)]
                use #p::{
                    ViaDisplay as _, ViaDynError as _, ViaDynErrorSend as _,
                    ViaDynErrorSendSync as _, ViaError as _,
                };
                (&&&&&#p::ErrRef(#n_e)).__tracer_record_err(#n_live);
            }
        }
    };
    let body = match (&args.err, &args.ret) {
        (None, None) => return quote!(#p::no_record),
        (Some(e), None) => {
            let rec = record_err(e.span);
            let res = as_result(p, e.span);
            quote! {
                if let ::core::result::Result::Err(#n_e) = #res #rec
            }
        }
        (None, Some(r)) => quote_spanned! {r.span=> #n_live.record_return(#n_out); },
        (Some(e), Some(r)) => {
            let rec = record_err(e.span);
            let res = as_result(p, e.span);
            let ok = quote_spanned! {r.span=> #n_live.record_return(#n_v) };
            quote! {
                match #res {
                    ::core::result::Result::Ok(#n_v) => { #ok; }
                    ::core::result::Result::Err(#n_e) => #rec
                }
            }
        }
    };
    quote!(|#n_live: &mut #p::Live, #n_out: &_| { #body })
}

/// The output seen as a `Result`: a type error here is reported at the `err` keyword.
fn as_result(p: &TokenStream, err_span: Span) -> TokenStream {
    let p = respan(p.clone(), err_span);
    let n_out = local_at("__tracer_out", err_span);
    quote_spanned!(err_span=> #p::as_result(#n_out))
}

enum Shape<'a> {
    Sync,
    Async,
    ImplFuture,
    /// `#[async_trait]` ran first: the body ends in `Box::pin(async move { .. })`.
    BoxedAsync {
        head: &'a [Stmt],
        async_block: &'a Expr,
    },
}

fn shape<'a>(sig: &Signature, block: &'a Block) -> Shape<'a> {
    if sig.asyncness.is_some() {
        return Shape::Async;
    }
    if diagnostics::returns_impl_future(sig) {
        return Shape::ImplFuture;
    }
    if let Some((Stmt::Expr(Expr::Call(call), None), head)) = block.stmts.split_last()
        && let Expr::Path(func) = &*call.func
        && call.args.len() == 1
        && let Some(async_block @ Expr::Async(_)) = call.args.first()
    {
        let segs: Vec<String> = func
            .path
            .segments
            .iter()
            .map(|s| s.ident.to_string())
            .collect();
        if segs.ends_with(&["Box".to_owned(), "pin".to_owned()]) {
            return Shape::BoxedAsync { head, async_block };
        }
    }
    Shape::Sync
}

/// `if false { return <a value of the declared return type>; }`, spanned at the return type: it
/// pins the type of a body moved into an async block or closure before the body is checked, so
/// `?` and `return` infer as in the original fn and a type error's "return type inferred" note
/// points at the user's return type (tracing-attributes' trick). `impl Trait` is erased to `_`.
fn fake_return(sig: &Signature) -> TokenStream {
    let (ty, span) = match &sig.output {
        ReturnType::Default => (quote!(()), sig.ident.span()),
        ReturnType::Type(_, ty) => {
            let mut ty = (**ty).clone();
            ImplTraitEraser.visit_type_mut(&mut ty);
            (quote!(#ty), ty.span())
        }
    };
    let n_fake_return = local_at("__tracer_fake_return", span);
    quote_spanned! {span=>
        #[allow(unreachable_code, clippy::diverging_sub_expression, clippy::let_unit_value, clippy::needless_return, clippy::empty_loop)]
        if false {
            let #n_fake_return: #ty = loop {};
            return #n_fake_return;
        }
    }
}

/// Replaces every `impl Trait` with `_`, which a `let` accepts.
struct ImplTraitEraser;

impl VisitMut for ImplTraitEraser {
    fn visit_type_mut(&mut self, t: &mut syn::Type) {
        if let syn::Type::ImplTrait(it) = t {
            *t = syn::Type::Infer(syn::TypeInfer {
                underscore_token: syn::Token![_](it.span()),
            });
        } else {
            syn::visit_mut::visit_type_mut(self, t);
        }
    }
}

/// What [`move_params`] makes of a fn's parameters.
#[derive(Default)]
struct Moved {
    /// At the top of the body's async block or closure: every parameter moved in, in order
    /// (`let a = a;`, `let __tracer_arg1 = __tracer_arg1;`, `let (x, y) = __tracer_arg2;`).
    moves: TokenStream,
    /// At the top of `args` and `fields`: the names bound by a destructured parameter, by
    /// reference (`let (x, y) = &__tracer_arg2;`).
    binds: TokenStream,
}

/// Moves every parameter into the body's async block or closure, so that they are dropped as
/// without `#[traced]`: after the body's locals, in reverse order, used or not (the block
/// captures only those it uses: the others were dropped after it, when the fn's own frame
/// ended). What rustc does for an `async fn`: a parameter bound to a name keeps it (without
/// `mut` outside: `let mut a = a;` inside); any other (`_`, a destructuring) is renamed
/// `__tracer_argN` in the signature and bound inside. Only the patterns of the signature change.
fn move_params(sig: &mut Signature, args: &TracedArgs) -> Moved {
    let mut out = Moved::default();
    let mentioned = mentioned_idents(args);
    let allow_if = |pat: &Pat| {
        let names = diagnostics::pat_idents(pat);
        if names.iter().any(|n| mentioned.contains(n)) {
            // Read by `args` or `fields`: not unused when the body does not use it.
            quote!(#[allow(unused_variables)])
        } else {
            TokenStream::new()
        }
    };
    for (i, input) in sig.inputs.iter_mut().enumerate() {
        let FnArg::Typed(t) = input else {
            // `self`: the first parameter, dropped last in both cases.
            continue;
        };
        let cfg: Vec<_> = t
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("cfg"))
            .collect();
        let allow = allow_if(&t.pat);
        match &mut *t.pat {
            Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => {
                let m = pi.mutability.take();
                let id = &pi.ident;
                out.moves.extend(
                    quote!(#(#cfg)* #allow #[allow(clippy::redundant_locals)] let #m #id = #id;),
                );
            }
            Pat::Macro(_) | Pat::Verbatim(_) => {}
            pat => {
                let arg = local_at(&format!("__tracer_arg{i}"), pat.span());
                out.moves
                    .extend(quote!(#(#cfg)* #[allow(clippy::redundant_locals)] let #arg = #arg;));
                if !matches!(pat, Pat::Wild(_)) {
                    out.moves.extend(quote!(#(#cfg)* #allow let #pat = #arg;));
                    if !diagnostics::pat_idents(pat).is_empty() {
                        let mut by_ref = pat.clone();
                        ByRef.visit_pat_mut(&mut by_ref);
                        out.binds.extend(
                            quote!(#(#cfg)* #[allow(unused_variables)] let #by_ref = &#arg;),
                        );
                    }
                }
                *pat = Pat::Ident(syn::PatIdent {
                    attrs: Vec::new(),
                    by_ref: None,
                    mutability: None,
                    ident: arg,
                    subpat: None,
                });
            }
        }
    }
    out
}

/// The parameters `#[async_trait]` renamed (`(a, b): (u32, u32)` is `__arg1: (u32, u32)`, bound
/// as `let (a, b) = { let __arg1 = __arg1; __arg1 };` in its async block): each one's name in the
/// signature, and its pattern. None for any other shape.
pub(crate) fn hidden_params(sig: &Signature, block: &Block) -> Vec<(proc_macro2::Ident, Pat)> {
    let Shape::BoxedAsync {
        async_block: Expr::Async(a),
        ..
    } = shape(sig, block)
    else {
        return Vec::new();
    };
    let renamed: Vec<&proc_macro2::Ident> = sig
        .inputs
        .iter()
        .filter_map(|i| match i {
            FnArg::Typed(t) => match &*t.pat {
                Pat::Ident(pi) if pi.ident.to_string().starts_with("__arg") => Some(&pi.ident),
                _ => None,
            },
            FnArg::Receiver(_) => None,
        })
        .collect();
    let mut out = Vec::new();
    for stmt in &a.block.stmts {
        let Stmt::Local(local) = stmt else { continue };
        let Some(init) = &local.init else { continue };
        let Expr::Block(b) = &*init.expr else {
            continue;
        };
        let Some(Stmt::Expr(Expr::Path(last), None)) = b.block.stmts.last() else {
            continue;
        };
        let Some(id) = last.path.get_ident() else {
            continue;
        };
        if let Some(param) = renamed.iter().find(|r| **r == id) {
            out.push(((*param).clone(), local.pat.clone()));
        }
    }
    out
}

/// A pattern that binds the same names by reference when matched against a reference (default
/// binding modes): without `mut`, `ref`, and `&` sub-patterns.
struct ByRef;

impl VisitMut for ByRef {
    fn visit_pat_mut(&mut self, p: &mut Pat) {
        while let Pat::Reference(r) = p {
            *p = (*r.pat).clone();
        }
        if let Pat::Ident(pi) = p {
            pi.by_ref = None;
            pi.mutability = None;
        }
        syn::visit_mut::visit_pat_mut(self, p);
    }
}

/// Every identifier `args` and `fields` mention.
fn mentioned_idents(args: &TracedArgs) -> Vec<proc_macro2::Ident> {
    fn walk(ts: TokenStream, out: &mut Vec<proc_macro2::Ident>) {
        for tt in ts {
            match tt {
                proc_macro2::TokenTree::Ident(i) => out.push(i),
                proc_macro2::TokenTree::Group(g) => walk(g.stream(), out),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    if let Some((_, names)) = &args.args {
        out.extend(names.iter().cloned());
    }
    if let Some((_, fields)) = &args.fields {
        for f in fields {
            walk(quote::ToTokens::to_token_stream(&f.value), &mut out);
        }
    }
    out
}

fn rewrite(
    sig: &mut Signature,
    block: &Block,
    args: &TracedArgs,
    name: &str,
) -> syn::Result<Block> {
    let (n_span, n_fut, n_guard) = (
        local("__tracer_span"),
        local("__tracer_fut"),
        local("__tracer_guard"),
    );
    let p = private_path(args);
    let done = on_done(&p, args);
    let inspects_output = args.err.is_some() || args.ret.is_some();
    let shape = shape(sig, block);
    // The body runs in an async block or a closure: the parameters are moved into it.
    let moved = match shape {
        Shape::Async | Shape::ImplFuture => move_params(sig, args),
        Shape::Sync if inspects_output => move_params(sig, args),
        Shape::Sync => Moved::default(),
        // `#[async_trait]` moved the parameters into its block: `args` and `fields` read the
        // names of a pattern it renamed by reference, as for a destructured parameter.
        Shape::BoxedAsync { .. } => Moved {
            moves: TokenStream::new(),
            binds: hidden_params(sig, block)
                .into_iter()
                .map(|(arg, mut pat)| {
                    ByRef.visit_pat_mut(&mut pat);
                    quote!(#[allow(unused_variables)] let #pat = &#arg;)
                })
                .collect(),
        },
    };
    let moves = &moved.moves;
    let started = prelude(&p, args, name, None, &moved.binds);
    // The body's future under its span; nothing recorded of the output (no `err`, no `ret`):
    // the span is ended in its place on the thread's stack when it can be.
    let instrumented = |fut: &dyn quote::ToTokens| {
        if inspects_output {
            quote!(#p::Instrumented::new(#n_span, #fut, #done))
        } else {
            quote!(#p::Instrumented::bare(#n_span, #fut))
        }
    };
    let instrumented_fut = instrumented(&n_fut);
    let body = match shape {
        // No closure: the body runs as written, and a drop guard ends the span on every way out
        // (`return`, `?`, the tail, a panic).
        Shape::Sync if !inspects_output => {
            let started = prelude(&p, args, name, Some(&n_guard), &moved.binds);
            quote! {
                #started
                #block
            }
        }
        // `err` and `ret` need the returned value: the body runs in a closure, as in
        // tracing-attributes. `check_fn` rejects them on a `#[track_caller]` fn.
        Shape::Sync => {
            let fake_return = fake_return(sig);
            let closure = quote_spanned!(block.span()=> move || { #moves #fake_return #block });
            quote! {
                #started
                #p::run_sync(#n_span, #closure, #done)
            }
        }
        Shape::Async => {
            let fake_return = fake_return(sig);
            let fut = quote_spanned!(block.span()=> async move { #moves #fake_return #block });
            // Off: the body's future is awaited bare, without the wrapper. On, with no
            // attribute to read off the arguments before the body takes them: the span starts
            // on the first poll of the body's wrapper (`Begun`), out of line, and the `async
            // fn`'s future holds no span (nor its drop) of its own.
            if args.args.is_none() && args.fields.is_none() {
                let meta = meta_static(&p, args, name);
                // Nothing recorded of the output: the span is made, and ended, in its place on
                // the thread's stack when it can be.
                let begun = if inspects_output {
                    quote!(#p::Begun::new(&__TRACER_META, #n_fut, #done))
                } else {
                    quote!(#p::Begun::bare(&__TRACER_META, #n_fut))
                };
                return syn::parse2(quote!({
                    #meta
                    let #n_fut = #fut;
                    if #p::on() {
                        #begun.await
                    } else {
                        #n_fut.await
                    }
                }));
            }
            // The span moves out of its local in both arms: the off arm's future does not
            // keep an empty `Option<Live>` (and its drop) alive across its `.await`.
            quote! {
                #started
                let #n_fut = #fut;
                match #n_span {
                    ::core::option::Option::None => {
                        ::core::mem::forget(#n_span);
                        #n_fut.await
                    }
                    #n_span => #instrumented_fut.await,
                }
            }
        }
        Shape::ImplFuture => {
            let closure = quote_spanned!(block.span()=> move || { #moves #block });
            quote! {
                #started
                let #n_fut = #p::enter(&mut #n_span, #closure);
                #instrumented_fut
            }
        }
        Shape::BoxedAsync { head, async_block } => {
            let instrumented_block = instrumented(async_block);
            quote! {
                #started
                #(#head)*
                ::std::boxed::Box::pin(#instrumented_block)
            }
        }
    };
    syn::parse2(quote!({ #body }))
}
