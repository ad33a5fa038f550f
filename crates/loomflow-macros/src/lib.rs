//! Procedural macros for loomflow. Use them through the `loomflow` crate.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, FnArg, ItemFn, Lit, Meta, Pat, ReturnType, Token, Type};

/// Turns a sync or async function into a loomflow tool.
///
/// The function becomes a unit struct of the same name that implements
/// `loomflow::Tool`; the original body stays callable as `name::invoke(...)`.
///
/// * The JSON Schema of the arguments comes from the parameter types through
///   `schemars` (any `Deserialize + JsonSchema` type works; `Option<T>`
///   parameters are optional).
/// * The description is the doc comment; a `# Arguments` section with lines
///   like ``* `city` - The city to look up.`` documents each parameter.
/// * Options: `name = "..."`, `description = "..."`, `destructive`,
///   `ends_turn`, `crate = "path::to::loomflow"`.
/// * A sync function runs on tokio's blocking pool, so it never blocks the
///   async runtime; `RunContext::current()` works inside it.
/// * The return value is serialised to JSON; a `Result`'s error becomes a tool
///   error the model sees.
#[proc_macro_attribute]
pub fn tool(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand(attr.into(), item.into()) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Makes an async function a workflow step.
///
/// Inside a running workflow node, each call opens a `loom.workflow.step`
/// span and writes `step_started`, then `step_completed` or (for a
/// function returning `Result` whose call fails) `step_failed` with the
/// redacted error, to the workflow's audit log under the run's user and
/// session. Outside a workflow the function runs as written.
///
/// * Options: `name = "..."` (default: the function's name),
///   `crate = "path::to::loomflow"`.
/// * Only `async fn`s: a step is awaited inside the workflow's task.
/// * A return type whose last segment is `Result` (`Result<T, E>`,
///   `io::Result<T>`, `anyhow::Result<T>`) is treated as fallible; its
///   error type must implement `Display`.
#[proc_macro_attribute]
pub fn step(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand_step(attr.into(), item.into()) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand_step(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let mut name: Option<String> = None;
    let mut krate: syn::Path = syn::parse_quote!(::loomflow);
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    for meta in metas {
        match &meta {
            Meta::NameValue(nv) if nv.path.is_ident("name") => {
                name = Some(string_value(&nv.value, "name")?);
            }
            Meta::NameValue(nv) if nv.path.is_ident("crate") => {
                krate = syn::parse_str(&string_value(&nv.value, "crate")?)?;
            }
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    "unknown #[step] option; expected `name = \"...\"` or `crate = \"...\"`",
                ));
            }
        }
    }
    let mut func: ItemFn = syn::parse2(item)?;
    if func.sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            func.sig.fn_token,
            format!(
                "#[step] requires an async fn: write `async fn {}(...)` (a step is awaited \
                 inside the workflow), or drop #[step] and pass the plain function to the workflow",
                func.sig.ident
            ),
        ));
    }
    let step_name = name.unwrap_or_else(|| func.sig.ident.to_string());
    let block = &func.block;
    // Pins the block's type to the declared one, so `?` inside it converts
    // errors as it would in the function itself.
    let pin = match &func.sig.output {
        ReturnType::Type(_, ty) if matches!(**ty, Type::ImplTrait(_)) => quote! {},
        ReturnType::Type(_, ty) => quote! {
            #[allow(unreachable_code, clippy::empty_loop, clippy::diverging_sub_expression)]
            if false {
                let __loomflow_step_return: #ty = loop {};
                return __loomflow_step_return;
            }
        },
        ReturnType::Default => quote! {},
    };
    let fallible = match &func.sig.output {
        ReturnType::Type(_, ty) => match &**ty {
            Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Result"),
            _ => false,
        },
        ReturnType::Default => false,
    };
    let runner = match fallible {
        true => quote! { run_fallible },
        false => quote! { run },
    };
    let body: syn::Block = syn::parse_quote! {{
        #krate::step::#runner(#step_name, async move {
            #pin
            #block
        })
        .await
    }};
    *func.block = body;
    Ok(quote! { #func })
}

struct Options {
    name: Option<String>,
    description: Option<String>,
    destructive: bool,
    ends_turn: bool,
    krate: syn::Path,
}

fn string_value(expr: &Expr, key: &str) -> syn::Result<String> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.value()),
        other => Err(syn::Error::new_spanned(
            other,
            format!("`{key}` takes a string literal, e.g. {key} = \"...\""),
        )),
    }
}

fn parse_options(attr: TokenStream2) -> syn::Result<Options> {
    let mut opts = Options {
        name: None,
        description: None,
        destructive: false,
        ends_turn: false,
        krate: syn::parse_quote!(::loomflow),
    };
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    for meta in metas {
        match &meta {
            Meta::Path(p) if p.is_ident("destructive") => opts.destructive = true,
            Meta::Path(p) if p.is_ident("ends_turn") => opts.ends_turn = true,
            Meta::NameValue(nv) if nv.path.is_ident("name") => {
                opts.name = Some(string_value(&nv.value, "name")?);
            }
            Meta::NameValue(nv) if nv.path.is_ident("description") => {
                opts.description = Some(string_value(&nv.value, "description")?);
            }
            Meta::NameValue(nv) if nv.path.is_ident("crate") => {
                opts.krate = syn::parse_str(&string_value(&nv.value, "crate")?)?;
            }
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    "unknown #[tool] option; expected `name = \"...\"`, `description = \"...\"`, `destructive`, `ends_turn` or `crate = \"...\"`",
                ));
            }
        }
    }
    Ok(opts)
}

/// Splits a doc comment into the description and per-argument docs.
fn parse_docs(attrs: &[syn::Attribute]) -> (String, Vec<(String, String)>) {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .map(|l| l.strip_prefix(' ').unwrap_or(&l).to_owned())
        .collect();
    let mut description = Vec::new();
    let mut args: Vec<(String, String)> = Vec::new();
    let mut in_args = false;
    for line in &lines {
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            let heading = trimmed.trim_start_matches('#').trim().to_ascii_lowercase();
            in_args = matches!(heading.as_str(), "arguments" | "args" | "parameters");
            if in_args {
                continue;
            }
        }
        if in_args {
            let item = trimmed.trim_start_matches(['*', '-']).trim();
            if let Some(rest) = item.strip_prefix('`')
                && let Some(end) = rest.find('`')
            {
                let name = rest[..end].to_owned();
                let doc = rest[end + 1..]
                    .trim_start()
                    .trim_start_matches(['-', ':', '—'])
                    .trim()
                    .to_owned();
                args.push((name, doc));
            } else if !item.is_empty()
                && let Some(last) = args.last_mut()
            {
                last.1.push(' ');
                last.1.push_str(item);
            }
        } else {
            description.push(line.as_str());
        }
    }
    (description.join("\n").trim().to_owned(), args)
}

fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Result"),
        _ => false,
    }
}

fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let opts = parse_options(attr)?;
    let func: ItemFn = syn::parse2(item)?;
    let krate = &opts.krate;
    let ident = &func.sig.ident;
    let vis = &func.vis;
    let is_async = func.sig.asyncness.is_some();
    if !func.sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &func.sig.generics,
            "#[tool] functions cannot be generic: the argument schema must be known",
        ));
    }
    let tool_name = opts.name.clone().unwrap_or_else(|| ident.to_string());
    let (doc_description, arg_docs) = parse_docs(&func.attrs);
    let description = opts.description.clone().unwrap_or(doc_description);

    let mut names = Vec::new();
    let mut fields = Vec::new();
    for input in &func.sig.inputs {
        let FnArg::Typed(pt) = input else {
            return Err(syn::Error::new_spanned(
                input,
                "#[tool] functions cannot take `self`; write a free function",
            ));
        };
        let Pat::Ident(pi) = &*pt.pat else {
            return Err(syn::Error::new_spanned(
                &pt.pat,
                "#[tool] parameters must be plain names (no patterns)",
            ));
        };
        if let Type::Reference(r) = &*pt.ty {
            return Err(syn::Error::new_spanned(
                r,
                "#[tool] parameters must be owned types (use String instead of &str)",
            ));
        }
        let name = &pi.ident;
        let ty = &pt.ty;
        let key = name.to_string();
        let key = key.strip_prefix("r#").unwrap_or(&key).to_owned();
        let doc = arg_docs
            .iter()
            .find(|(n, _)| *n == key)
            .map(|(_, d)| quote!(#[doc = #d]));
        fields.push(quote! { #doc #name: #ty });
        names.push(name.clone());
    }

    let args_struct = format_ident!("__LoomflowArgs_{}", ident);
    let call_inner = quote!(#ident::invoke(#(#names),*));
    let invoke = if is_async {
        quote!(#call_inner.await)
    } else {
        quote! {{
            let __task = #krate::__private::spawn_blocking(move || #call_inner);
            __task.await.map_err(|e| #krate::__private::ToolError::failed(
                format!("tool `{}` panicked: {}", #tool_name, e)
            ))?
        }}
    };
    let to_output = match &func.sig.output {
        ReturnType::Default => quote! {{ #invoke; Ok(#krate::__private::serde_json::Value::Null) }},
        ReturnType::Type(_, ty) if is_result(ty) => quote! {
            match #invoke {
                Ok(v) => #krate::__private::output_value(v),
                Err(e) => Err(#krate::__private::ToolError::failed(e.to_string())),
            }
        },
        ReturnType::Type(..) => quote!(#krate::__private::output_value(#invoke)),
    };

    let destructive = opts.destructive;
    let ends_turn = opts.ends_turn;
    let serde_path = quote!(#krate::__private::serde).to_string();
    let schemars_path = quote!(#krate::__private::schemars).to_string();
    let fn_attrs: Vec<_> = func.attrs.iter().collect();
    let sig_inputs = &func.sig.inputs;
    let sig_output = &func.sig.output;
    let asyncness = &func.sig.asyncness;
    let block = &func.block;
    let unsafety = &func.sig.unsafety;

    Ok(quote! {
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, Default)]
        #(#fn_attrs)*
        #vis struct #ident;

        impl #ident {
            /// Calls the tool's function directly, bypassing the agent.
            #[allow(clippy::too_many_arguments)]
            #vis #unsafety #asyncness fn invoke(#sig_inputs) #sig_output #block
        }

        const _: () = {
            #[allow(non_camel_case_types)]
            #[derive(#krate::__private::serde::Deserialize, #krate::__private::schemars::JsonSchema)]
            #[serde(crate = #serde_path, deny_unknown_fields)]
            #[schemars(crate = #schemars_path)]
            struct #args_struct { #(#fields),* }

            #[#krate::__private::async_trait]
            impl #krate::__private::Tool for #ident {
                fn definition(&self) -> &#krate::__private::ToolDef {
                    static DEF: ::std::sync::OnceLock<#krate::__private::ToolDef> = ::std::sync::OnceLock::new();
                    DEF.get_or_init(|| #krate::__private::ToolDef {
                        name: #tool_name.to_owned(),
                        description: #description.to_owned(),
                        input_schema: #krate::__private::tool_schema::<#args_struct>(),
                        server: None,
                        destructive: #destructive,
                        ends_turn: #ends_turn,
                    })
                }

                async fn call(
                    &self,
                    args: &#krate::__private::serde_json::Value,
                ) -> ::std::result::Result<#krate::__private::serde_json::Value, #krate::__private::ToolError> {
                    let def = #krate::__private::Tool::definition(self);
                    let #args_struct { #(#names),* } =
                        #krate::__private::parse_args::<#args_struct>(&def.name, &def.input_schema, args)?;
                    #to_output
                }
            }
        };
    })
}
