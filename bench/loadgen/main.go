// Command loadgen sends GET requests at a fixed concurrency, bounded in time and
// count, and prints one JSON object: throughput and latency percentiles of the
// successful responses (errors are counted apart).
//
// It exists because a Python client on a 2-core machine would spend the CPU the
// services need; this one costs little and measures from send to last byte.
//
//	loadgen -url http://127.0.0.1:8080/v1/feed -c 8 -d 10s -n 200000 -tokens tokens.txt
//
// With -tokens, request i carries "Authorization: Bearer <line i mod N>".
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	Requests    int            `json:"requests"`
	Errors      int            `json:"errors"`
	Statuses    map[string]int `json:"statuses"`
	Seconds     float64        `json:"seconds"`
	RPS         float64        `json:"rps"`
	P50         float64        `json:"p50_ms"`
	P95         float64        `json:"p95_ms"`
	P99         float64        `json:"p99_ms"`
	Max         float64        `json:"max_ms"`
	Concurrency int            `json:"concurrency"`
}

func main() {
	url := flag.String("url", "", "URL to GET")
	concurrency := flag.Int("c", 8, "requests in flight")
	duration := flag.Duration("d", 10*time.Second, "how long to send")
	limit := flag.Int64("n", 1_000_000, "at most this many requests")
	warmup := flag.Duration("warmup", time.Second, "sent first and not counted")
	tokensFile := flag.String("tokens", "", "file of bearer tokens, one per line")
	flag.Parse()
	if *url == "" {
		fmt.Fprintln(os.Stderr, "loadgen: -url is required")
		os.Exit(2)
	}
	tokens, err := readTokens(*tokensFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: *concurrency, MaxConnsPerHost: *concurrency},
	}
	run(client, *url, tokens, *concurrency, *warmup, 1<<62) // warm connections and caches
	out := run(client, *url, tokens, *concurrency, *duration, *limit)
	json.NewEncoder(os.Stdout).Encode(out)
}

func readTokens(path string) ([]string, error) {
	if path == "" {
		return nil, nil
	}
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var tokens []string
	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		if line := strings.TrimSpace(scanner.Text()); line != "" {
			tokens = append(tokens, line)
		}
	}
	return tokens, scanner.Err()
}

func run(client *http.Client, url string, tokens []string, concurrency int, duration time.Duration, limit int64) result {
	var sent atomic.Int64
	var mu sync.Mutex
	var latencies []float64
	statuses := map[string]int{}
	errors := 0
	deadline := time.Now().Add(duration)
	started := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []float64
			myStatuses := map[string]int{}
			myErrors := 0
			for time.Now().Before(deadline) {
				i := sent.Add(1)
				if i > limit {
					break
				}
				request, _ := http.NewRequest(http.MethodGet, url, nil)
				if len(tokens) > 0 {
					request.Header.Set("Authorization", "Bearer "+tokens[int(i)%len(tokens)])
				}
				begin := time.Now()
				response, err := client.Do(request)
				if err != nil {
					myErrors++
					continue
				}
				io.Copy(io.Discard, response.Body)
				response.Body.Close()
				myStatuses[fmt.Sprint(response.StatusCode)]++
				if response.StatusCode >= 400 {
					myErrors++ // not a latency, and not counted in the rate
					continue
				}
				mine = append(mine, float64(time.Since(begin).Microseconds())/1000)
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			for k, v := range myStatuses {
				statuses[k] += v
			}
			errors += myErrors
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(started).Seconds()
	sort.Float64s(latencies)
	return result{
		Requests: len(latencies), Errors: errors, Statuses: statuses, Seconds: elapsed,
		RPS: float64(len(latencies)) / elapsed, P50: pct(latencies, 0.50), P95: pct(latencies, 0.95),
		P99: pct(latencies, 0.99), Max: pct(latencies, 1), Concurrency: concurrency,
	}
}

func pct(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}
