//! Link settings for the component (native builds ignore them).

fn main() {
    // The search recurses nowhere and keeps its lists on the heap, so a small
    // stack is ample; it also keeps every page the component touches within
    // the first few hundred KiB of memory, which the pooling allocator can then
    // reset by memset instead of fresh page faults per instance.
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=-zstack-size=65536");
    }
}
