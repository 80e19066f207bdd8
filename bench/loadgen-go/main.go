// Command loadgen sends requests at a fixed concurrency, bounded in time and
// count, and prints one JSON object: throughput and latency percentiles of the
// successful responses (errors are counted apart).
//
// It exists because a Python client on a 2-core machine would spend the CPU the
// services need; this one costs little and measures from send to last byte.
//
//	loadgen -url http://127.0.0.1:8080/v1/feed -c 8 -d 10s -n 200000 -tokens tokens.txt
//	loadgen -url http://127.0.0.1:8080/v1/sleepEntries -method POST -body night.json -tokens t.txt
//	loadgen -grpc 127.0.0.1:50051 -rpc /zentry.user.v1.UserService/GetJwks -c 8 -d 10s
//
// With -tokens, request n carries "Authorization: Bearer <line n mod N>". A -body
// file is a template: {{n}} becomes the request's number, {{random}} a random word, {{now}} the time it is
// sent, and {{start}} and {{end}} the bounds of a slot -span long; each token's
// slots go back from -origin, -step apart, so one user's nights never overlap. -grpc calls a method whose request is empty, on one HTTP/2
// connection per worker. -from spreads the workers over local addresses (a flood from many clients).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
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

// call sends request number i; it returns a status label and whether it succeeded.
type call func(i int64) (string, bool)

type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	url := flag.String("url", "", "URL to send to")
	method := flag.String("method", http.MethodGet, "HTTP method")
	bodyFile := flag.String("body", "", "request body template (see the package doc)")
	var extra headers
	flag.Var(&extra, "H", `extra header "Name: value" (repeatable)`)
	grpcTarget := flag.String("grpc", "", "host:port to call over gRPC instead of -url")
	rpc := flag.String("rpc", "", "gRPC method, e.g. /zentry.user.v1.UserService/GetJwks")
	concurrency := flag.Int("c", 8, "requests in flight")
	duration := flag.Duration("d", 10*time.Second, "how long to send")
	limit := flag.Int64("n", 1_000_000, "at most this many requests")
	warmup := flag.Duration("warmup", time.Second, "sent first and not counted")
	tokensFile := flag.String("tokens", "", "file of bearer tokens, one per line")
	step := flag.Duration("step", 2*time.Hour, "how far apart the {{start}} slots are")
	span := flag.Duration("span", time.Hour, "from {{start}} to {{end}}")
	originText := flag.String("origin", "", "where the {{start}} slots begin, RFC 3339 (default: a day ago)")
	from := flag.String("from", "", "local addresses to send from, comma-separated, one a worker in turn")
	rate := flag.Float64("rate", 0, "requests a second in all, at most (0: as fast as answered)")
	flag.Parse()
	tokens, err := readTokens(*tokensFile)
	fail(err)
	var send func() call
	switch {
	case *grpcTarget != "" && *rpc != "":
		send = grpcCaller(*grpcTarget, *rpc)
	case *url != "":
		template := ""
		if *bodyFile != "" {
			raw, err := os.ReadFile(*bodyFile)
			fail(err)
			template = string(raw)
		}
		shared := newClient("", *concurrency)
		var sources []string
		if *from != "" {
			sources = strings.Split(*from, ",")
		}
		var workers atomic.Int64
		origin := time.Now().Add(-24 * time.Hour).Truncate(time.Hour)
		if *originText != "" {
			parsed, err := time.Parse(time.RFC3339, *originText)
			fail(err)
			origin = parsed
		}
		var counter atomic.Int64 // numbers stay unique across the warm-up and the run
		send = func() call {
			client := shared
			if len(sources) > 0 { // each worker its own connections, from its own address
				client = newClient(sources[int(workers.Add(1))%len(sources)], 1)
			}
			return httpCaller(client, *method, *url, template, extra, tokens, &counter, origin, *step, *span)
		}
	default:
		fail(fmt.Errorf("give -url, or -grpc and -rpc"))
	}
	run(send, *concurrency, *warmup, 1<<62, *rate) // warm connections and caches
	out := run(send, *concurrency, *duration, *limit, *rate)
	json.NewEncoder(os.Stdout).Encode(out)
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
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

// newClient sends from `source` (any local address if empty) on up to `conns` connections.
func newClient(source string, conns int) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	if source != "" {
		dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(strings.TrimSpace(source))}
	}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext:         dialer.DialContext,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
		},
	}
}

func httpCaller(
	client *http.Client, method, url, template string, extra headers, tokens []string,
	counter *atomic.Int64, origin time.Time, step, span time.Duration,
) call {
	return func(int64) (string, bool) {
		n := counter.Add(1)
		slot := n // each token's requests take that user's slots one after another
		if len(tokens) > 0 {
			slot = n / int64(len(tokens))
		}
		var body io.Reader
		if template != "" {
			start := origin.Add(-time.Duration(slot) * step)
			body = strings.NewReader(strings.NewReplacer(
				"{{n}}", strconv.FormatInt(n, 10),
				"{{random}}", strconv.FormatUint(rand.Uint64(), 36),
				"{{now}}", time.Now().UTC().Format(time.RFC3339),
				"{{start}}", start.UTC().Format(time.RFC3339),
				"{{end}}", start.Add(span).UTC().Format(time.RFC3339),
			).Replace(template))
		}
		request, _ := http.NewRequest(method, url, body)
		if len(tokens) > 0 {
			request.Header.Set("Authorization", "Bearer "+tokens[int(n)%len(tokens)])
		}
		for _, h := range extra {
			name, value, _ := strings.Cut(h, ":")
			request.Header.Set(strings.TrimSpace(name), strings.TrimSpace(value))
		}
		response, err := client.Do(request)
		if err != nil {
			return "transport error", false
		}
		io.Copy(io.Discard, response.Body)
		response.Body.Close()
		return strconv.Itoa(response.StatusCode), response.StatusCode < 400
	}
}

// rawCodec sends and receives message bytes as they are: the request is empty.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append((*(v.(*[]byte)))[:0], data...)
	return nil
}
func (rawCodec) Name() string { return "raw" }

func init() { encoding.RegisterCodec(rawCodec{}) }

func grpcCaller(target, rpc string) func() call {
	return func() call {
		conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		fail(err)
		return func(int64) (string, bool) {
			request, reply := []byte{}, []byte{}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := conn.Invoke(ctx, rpc, &request, &reply, grpc.ForceCodec(rawCodec{})); err != nil {
				return "grpc error", false
			}
			return "OK", true
		}
	}
}

// run sends with `concurrency` workers until `duration` or `limit`; with a `rate`, each
// worker waits for its turn, so that all of them send at most `rate` a second.
func run(send func() call, concurrency int, duration time.Duration, limit int64, rate float64) result {
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
		do := send()
		go func() {
			defer wg.Done()
			var mine []float64
			myStatuses := map[string]int{}
			myErrors := 0
			var every time.Duration
			if rate > 0 {
				every = time.Duration(float64(concurrency) / rate * float64(time.Second))
			}
			next := time.Now()
			for time.Now().Before(deadline) {
				if every > 0 {
					time.Sleep(time.Until(next))
					next = next.Add(every)
				}
				i := sent.Add(1)
				if i > limit {
					break
				}
				begin := time.Now()
				status, ok := do(i)
				myStatuses[status]++
				if !ok {
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
