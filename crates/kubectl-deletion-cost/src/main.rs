//! `kubectl deletion-cost`: what the pod-deletion-cost policy would do to a
//! cluster, from a kubectl snapshot. Everything lives in the library.

fn main() -> std::process::ExitCode {
    kubectl_deletion_cost::cli::main()
}
