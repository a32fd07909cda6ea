//! The whole-process peer of `port-host get-free-port 8000..8100` for a
//! user of the `portpicker` crate, which has no search: its `is_free` over
//! the range.

fn main() {
    match (8000..8100).find(|&p| portpicker::is_free(p)) {
        Some(port) => println!("{port}"),
        None => {
            eprintln!("error: no free port in 8000..8100");
            std::process::exit(2)
        }
    }
}
