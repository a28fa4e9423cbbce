// da_klauspost.go - the klauspost/reedsolomon peer of tests/bench/da_bench.c.
//
// Encodes k data shards of S bytes into m parity shards (the library's
// default matrix, one goroutine, so the figure is per core like ours) and
// prints the median encode throughput over reps samples, in GB/s of data
// (k * S bytes per encode), as one line: "klauspost_gbps <value>".
// Built by scripts/run-bench with Debian's package, no network:
//   GO111MODULE=off GOPATH=/usr/share/gocode go build -o BIN tests/bench/da_klauspost.go
// Usage: BIN k m S reps sample_ms
package main

import (
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/klauspost/reedsolomon"
)

func arg(i int) int {
	v, err := strconv.Atoi(os.Args[i])
	if err != nil {
		fmt.Fprintln(os.Stderr, "usage: da_klauspost k m S reps sample_ms")
		os.Exit(2)
	}
	return v
}

func main() {
	if len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: da_klauspost k m S reps sample_ms")
		os.Exit(2)
	}
	k, m, S, reps, ms := arg(1), arg(2), arg(3), arg(4), arg(5)
	enc, err := reedsolomon.New(k, m, reedsolomon.WithMaxGoroutines(1))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	r := rand.New(rand.NewSource(1))
	shards := make([][]byte, k+m)
	for i := range shards {
		shards[i] = make([]byte, S)
		if i < k {
			r.Read(shards[i])
		}
	}
	if err := enc.Encode(shards); err != nil { // warm-up
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var samples []float64
	for rep := 0; rep < reps; rep++ {
		n := 0
		t0 := time.Now()
		for time.Since(t0) < time.Duration(ms)*time.Millisecond {
			enc.Encode(shards)
			n++
		}
		samples = append(samples, float64(n*k*S)/time.Since(t0).Seconds()/1e9)
	}
	sort.Float64s(samples)
	fmt.Printf("klauspost_gbps %.3f\n", samples[len(samples)/2])
}
