// A real GenAI client in Go (standard library only, as Go from Debian's
// packages builds it) for the --tls-probes tests: net/http and crypto/tls
// making the calls named on the command line against BASE_URL, trusting
// the lab's CA in $CERT. Prints one line per call: the call and "ok" or
// the error.
//
//	genai_client BASE_URL nonai=URL|pause|chat|stream|embeddings [...]
//
// With H2=1 in the environment it speaks HTTP/2 where the server does.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

func post(client *http.Client, url string, body any) (*http.Response, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest("POST", url, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer test")
	return client.Do(req)
}

func call(client *http.Client, base, what string) (bool, error) {
	messages := []message{{Role: "user", Content: "hi"}}
	switch {
	case strings.HasPrefix(what, "nonai="):
		resp, err := client.Get(strings.TrimPrefix(what, "nonai="))
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode == 200, err
	case what == "pause":
		time.Sleep(time.Second)
		return true, nil
	case what == "chat":
		resp, err := post(client, base+"/chat/completions", map[string]any{"model": "gpt-4o", "messages": messages})
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		var out struct {
			Choices []struct{ Message message } `json:"choices"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		return err == nil && len(out.Choices) == 1 && out.Choices[0].Message.Content == "hi", err
	case what == "stream":
		resp, err := post(client, base+"/chat/completions", map[string]any{
			"model": "gpt-4o-mini", "messages": messages, "stream": true,
			"stream_options": map[string]bool{"include_usage": true},
		})
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		text := ""
		lines := bufio.NewScanner(resp.Body)
		for lines.Scan() {
			line := lines.Text()
			if !strings.HasPrefix(line, "data: ") || line == "data: [DONE]" {
				continue
			}
			data := strings.TrimPrefix(line, "data: ")
			var chunk struct {
				Choices []struct{ Delta message } `json:"choices"`
			}
			if err := json.Unmarshal([]byte(data), &chunk); err != nil {
				return false, err
			}
			for _, c := range chunk.Choices {
				text += c.Delta.Content
			}
		}
		return text == "hi", lines.Err()
	case what == "embeddings":
		resp, err := post(client, base+"/embeddings", map[string]any{"model": "text-embedding-3-small", "input": "hi"})
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		var out struct {
			Data []any `json:"data"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		return err == nil && len(out.Data) == 1, err
	}
	return false, fmt.Errorf("unknown call %q", what)
}

func main() {
	pem, err := os.ReadFile(os.Getenv("CERT"))
	if err != nil {
		panic(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots},
			// H2=1: HTTP/2 when the server offers it, as Go's default
			// transport does (a custom TLS config turns that off).
			ForceAttemptHTTP2: os.Getenv("H2") == "1",
		},
	}
	base, calls := os.Args[1], os.Args[2:]
	for _, what := range calls {
		ok, err := call(client, base, what)
		name := strings.SplitN(what, "=", 2)[0]
		switch {
		case err != nil:
			fmt.Println(name, err)
		case ok:
			fmt.Println(name, "ok")
		default:
			fmt.Println(name, "wrong-answer")
		}
	}
}
