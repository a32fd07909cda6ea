//! The whole-process peer of `port-host get-free-port 8000..8100` for a
//! user of the `port_check` crate.

fn main() {
    match port_check::free_local_port_in_range(8000..8100) {
        Some(port) => println!("{port}"),
        None => {
            eprintln!("error: no free port in 8000..8100");
            std::process::exit(2)
        }
    }
}
