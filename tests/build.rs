//! Compiles the test protos with a vendored protoc: a newcomer needs no system install.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/echo.proto"],
        &["proto"],
    )?;
    println!("cargo:rerun-if-changed=proto/echo.proto");
    Ok(())
}
