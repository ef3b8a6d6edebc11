// Build-time work only. Nothing to generate yet: the ABI is declared by hand in ffi/ and pinned by layout tests.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
