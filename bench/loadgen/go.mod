// The HTTP load generator `make bench` drives (standard library only).
module zentry.local/bench/loadgen

go 1.25.0
