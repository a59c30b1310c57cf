// An HTTPS server that speaks HTTP/2 (Go's net/http negotiates h2 over
// TLS) and answers like a model provider, for the --tls-probes tests:
// chat completions (JSON, or server-sent events with usage last when the
// request streams) and embeddings, with the same usage as peer_server.py.
// Prints "ready" once it listens.
//
//	h2_server ADDR CERT KEY
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	addr, cert, key := os.Args[1], os.Args[2], os.Args[3]
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Stream bool `json:"stream"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.ProtoMajor != 2:
			w.WriteHeader(http.StatusHTTPVersionNotSupported)
		case len(r.URL.Path) >= 11 && r.URL.Path[len(r.URL.Path)-11:] == "/embeddings":
			fmt.Fprint(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0,1]}],"model":"m","usage":{"prompt_tokens":8,"total_tokens":8}}`)
		case req.Stream:
			w.Header().Set("Content-Type", "text/event-stream")
			for _, e := range []string{
				`{"choices":[{"index":0,"delta":{"role":"assistant","content":"h"}}],"usage":null}`,
				`{"choices":[{"index":0,"delta":{"content":"i"},"finish_reason":"stop"}],"usage":null}`,
				`{"choices":[],"usage":{"prompt_tokens":21,"completion_tokens":3,"total_tokens":24}}`,
				`[DONE]`,
			} {
				fmt.Fprintf(w, "data: %s\n\n", e)
				w.(http.Flusher).Flush()
			}
		default:
			fmt.Fprint(w, `{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}`)
		}
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		panic(err)
	}
	fmt.Println("ready")
	panic(http.ServeTLS(ln, mux, cert, key))
}
