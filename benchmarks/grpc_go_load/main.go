// A closed-loop gRPC load generator written with grpc-go, as a Go service calls a model: every call has its own
// deadline (context.WithTimeout), so every call sends a new grpc-timeout header, which h2load cannot do.
//
// Built offline from Debian's packages by modelpress.benchmarks.grpc_vs_rest --go-client:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o grpc-go-load main.go
//
// Usage: grpc-go-load -addr 127.0.0.1:8001 -body request.pb -c 32 -d 10 -warmup 2 -timeout 10s
// Prints one JSON object: requests, errors, rps, p50_ms, p99_ms (calls finished after the warm-up only).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
)

// rawCodec sends the serialized request as it is and keeps the answer's bytes: no generated code needed.
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	*(v.(*[]byte)) = append((*(v.(*[]byte)))[:0], data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

type result struct {
	latencies []time.Duration
	errors    int
	lastError error
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8001", "host:port of the gRPC server")
	bodyPath := flag.String("body", "", "a serialized ModelInferRequest")
	method := flag.String("method", "/inference.GRPCInferenceService/ModelInfer", "full method name")
	connections := flag.Int("c", 32, "connections, each with one call in flight (as h2load -c N -m 1)")
	seconds := flag.Float64("d", 10, "seconds measured, after the warm-up")
	warmup := flag.Float64("warmup", 2, "seconds run before measuring")
	timeout := flag.Duration("timeout", 10*time.Second, "each call's deadline")
	flag.Parse()
	body, err := os.ReadFile(*bodyPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error: cannot read the request body:", err)
		os.Exit(2)
	}
	conns := make([]*grpc.ClientConn, *connections)
	for i := range conns {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conns[i], err = grpc.DialContext(ctx, *addr, grpc.WithInsecure(), grpc.WithBlock())
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "error: cannot connect:", err)
			os.Exit(1)
		}
		defer conns[i].Close()
	}
	start := time.Now()
	measureFrom := start.Add(time.Duration(*warmup * float64(time.Second)))
	end := measureFrom.Add(time.Duration(*seconds * float64(time.Second)))
	results := make([]result, len(conns))
	var wg sync.WaitGroup
	for i, conn := range conns {
		wg.Add(1)
		go func(conn *grpc.ClientConn, r *result) {
			defer wg.Done()
			var out []byte
			for {
				began := time.Now()
				if !began.Before(end) {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), *timeout)
				err := conn.Invoke(ctx, *method, &body, &out, grpc.ForceCodec(rawCodec{}))
				cancel()
				finished := time.Now()
				if finished.Before(measureFrom) || finished.After(end) {
					continue
				}
				if err != nil {
					r.errors++
					r.lastError = err
					continue
				}
				r.latencies = append(r.latencies, finished.Sub(began))
			}
		}(conn, &results[i])
	}
	wg.Wait()
	var all []time.Duration
	errors := 0
	var lastError error
	for _, r := range results {
		all = append(all, r.latencies...)
		errors += r.errors
		if r.lastError != nil {
			lastError = r.lastError
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	percentile := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[int(p*float64(len(all)-1))]) / float64(time.Millisecond)
	}
	summary := map[string]interface{}{
		"requests": len(all), "errors": errors, "rps": float64(len(all)) / *seconds,
		"p50_ms": percentile(0.50), "p99_ms": percentile(0.99),
	}
	if lastError != nil {
		summary["last_error"] = lastError.Error()
	}
	json.NewEncoder(os.Stdout).Encode(summary)
}
