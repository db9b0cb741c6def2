package w3d5

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/param"
)

// GoClient talks to the day's handler over HTTP with the official Go
// client, openai-go, unchanged: chat and completions, streamed and not,
// with stop sequences and usage, and the client's own error type for a
// refused request. The answers are the scripted engine's, computed here.
func GoClient(t *testing.T, d Day) {
	t.Helper()
	eng := newScripted(t)
	h, stub := handlerFor(t, d, eng)
	if stub {
		return
	}
	srv := httptest.NewServer(recordTo(t, h))
	defer srv.Close()
	client := openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	grade := func(name string, fn func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			run(t, task4, func() { fn(t) })
		})
	}
	tk := shippedTokenizer(t)
	msgs := []tokenizerMessage{{Role: "system", Content: "You are terse."}, {Role: "user", Content: "Where is Paris?"}}
	params := openai.ChatCompletionNewParams{
		Model:    modelID,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage(msgs[0].Content), openai.UserMessage(msgs[1].Content)},
		Seed:     openai.Int(11),
	}
	prompt, err := tk.EncodeChat(msgs, true)
	if err != nil {
		t.Fatal(err)
	}
	usageFor := func(w expected) openai.CompletionUsage {
		return openai.CompletionUsage{PromptTokens: int64(len(prompt)), CompletionTokens: int64(w.completion), TotalTokens: int64(len(prompt) + w.completion)}
	}
	sameUsage := func(got, want openai.CompletionUsage) bool {
		return got.PromptTokens == want.PromptTokens && got.CompletionTokens == want.CompletionTokens && got.TotalTokens == want.TotalTokens
	}

	grade("models", func(t *testing.T) {
		page, err := client.Models.List(ctx)
		if err != nil || len(page.Data) != 1 || page.Data[0].ID != modelID {
			t.Errorf("Models.List: %+v, %v; want one model %q", page, err, modelID)
		}
	})
	grade("chat", func(t *testing.T) {
		p := params
		p.MaxCompletionTokens = openai.Int(1000)
		r, err := client.Chat.Completions.New(ctx, p)
		if err != nil {
			t.Fatalf("Chat.Completions.New: %v", err)
		}
		w := eng.expect(t, 1000, nil)
		if len(r.Choices) != 1 || r.Choices[0].Message.Content != w.text || r.Choices[0].FinishReason != w.finish || !sameUsage(r.Usage, usageFor(w)) {
			t.Errorf("got %+v\nwant text %q, finish %q, usage %+v", r, w.text, w.finish, usageFor(w))
		}
	})
	grade("chat_length", func(t *testing.T) {
		p := params
		p.MaxTokens = openai.Int(5)
		r, err := client.Chat.Completions.New(ctx, p)
		if err != nil {
			t.Fatalf("Chat.Completions.New: %v", err)
		}
		w := eng.expect(t, 5, nil)
		if r.Choices[0].Message.Content != w.text || r.Choices[0].FinishReason != "length" || !sameUsage(r.Usage, usageFor(w)) {
			t.Errorf("max_tokens 5: got %q, %q, %+v; want %q, length, %+v", r.Choices[0].Message.Content, r.Choices[0].FinishReason, r.Usage, w.text, usageFor(w))
		}
	})
	for _, stops := range [][]string{{"623"}, {"☕", "capital"}, {"nowhere in the text"}} {
		grade("chat_stop_"+stops[0], func(t *testing.T) {
			p := params
			p.Stop = openai.ChatCompletionNewParamsStopUnion{OfStringArray: stops}
			r, err := client.Chat.Completions.New(ctx, p)
			if err != nil {
				t.Fatalf("Chat.Completions.New: %v", err)
			}
			w := eng.expect(t, eng.maxContext-len(prompt), stops)
			if r.Choices[0].Message.Content != w.text || r.Choices[0].FinishReason != w.finish || !sameUsage(r.Usage, usageFor(w)) {
				t.Errorf("stop %q: got %q, %q, %+v; want %q, %q, %+v", stops, r.Choices[0].Message.Content, r.Choices[0].FinishReason, r.Usage, w.text, w.finish, usageFor(w))
			}
		})
	}
	for _, stop := range []string{"", "= 6"} {
		grade("chat_stream_stop_"+stop, func(t *testing.T) {
			p := params
			p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			var stops []string
			if stop != "" {
				p.Stop = openai.ChatCompletionNewParamsStopUnion{OfString: param.NewOpt(stop)}
				stops = []string{stop}
			}
			s := client.Chat.Completions.NewStreaming(ctx, p)
			var text strings.Builder
			finish := ""
			var usage openai.CompletionUsage
			chunks := 0
			for s.Next() {
				c := s.Current()
				chunks++
				for _, ch := range c.Choices {
					text.WriteString(ch.Delta.Content)
					if ch.FinishReason != "" {
						finish = ch.FinishReason
					}
				}
				if c.JSON.Usage.Valid() && c.Usage.TotalTokens > 0 {
					usage = c.Usage
				}
			}
			if err := s.Err(); err != nil {
				t.Fatalf("stream: %v", err)
			}
			w := eng.expect(t, eng.maxContext-len(prompt), stops)
			if text.String() != w.text || finish != w.finish || !sameUsage(usage, usageFor(w)) {
				t.Errorf("stream with stop %q: got %q, %q, %+v; want %q, %q, %+v", stops, text.String(), finish, usage, w.text, w.finish, usageFor(w))
			}
			if chunks < 3 {
				t.Errorf("the reply came in %d chunks: a stream sends the text as it is generated", chunks)
			}
		})
	}
	grade("completion", func(t *testing.T) {
		cp := openai.CompletionNewParams{Model: modelID, Prompt: openai.CompletionNewParamsPromptUnion{OfString: param.NewOpt("The capital of")},
			MaxTokens: openai.Int(12), Stop: openai.CompletionNewParamsStopUnion{OfString: param.NewOpt("France")}}
		r, err := client.Completions.New(ctx, cp)
		if err != nil {
			t.Fatalf("Completions.New: %v", err)
		}
		ids, _ := tk.EncodeText("The capital of")
		w := eng.expect(t, 12, []string{"France"})
		if len(r.Choices) != 1 || r.Choices[0].Text != w.text || string(r.Choices[0].FinishReason) != w.finish ||
			r.Usage.PromptTokens != int64(len(ids)) || r.Usage.CompletionTokens != int64(w.completion) {
			t.Errorf("got %+v; want text %q, finish %q, usage %d + %d", r, w.text, w.finish, len(ids), w.completion)
		}
		s := client.Completions.NewStreaming(ctx, cp)
		var text strings.Builder
		for s.Next() {
			for _, ch := range s.Current().Choices {
				text.WriteString(ch.Text)
			}
		}
		if s.Err() != nil || text.String() != w.text {
			t.Errorf("streamed completion: %q, %v; want %q", text.String(), s.Err(), w.text)
		}
	})
	grade("errors", func(t *testing.T) {
		p := params
		p.Model = "gpt-5"
		_, err := client.Chat.Completions.New(ctx, p)
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
			t.Errorf("an unknown model: %v; want the client's *openai.Error with status 404", err)
		}
		p = params
		p.N = openai.Int(2)
		_, err = client.Chat.Completions.New(ctx, p)
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || apiErr.Message == "" {
			t.Errorf("n=2: %v; want the client's *openai.Error with status 400 and a message", err)
		}
	})
}

// Disconnect checks that a request ends in the engine when its client goes
// away mid-stream, and when a stop sequence ends the reply early: the
// engine sees the request's context cancelled.
func Disconnect(t *testing.T, d Day) {
	t.Helper()
	eng := newScripted(t)
	for range 6 { // a long reply, slowly
		eng.script = append(eng.script, eng.script...)
	}
	eng.delay = 5 * time.Millisecond
	h, stub := handlerFor(t, d, eng)
	if stub {
		return
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	waitCancels := func(n int) bool {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if eng.cancels() >= n {
				return true
			}
		}
		return false
	}
	t.Run("client_gone", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		body := `{"model":"tinyqwen-chat","stream":true,"messages":[{"role":"user","content":"hi"}]}`
		req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/chat/completions", strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 256)
		if _, err := resp.Body.Read(buf); err != nil {
			t.Fatalf("reading the first event: %v", err)
		}
		cancel()
		resp.Body.Close()
		if !waitCancels(1) {
			t.Errorf("the client went away mid-stream, and after 5 s the engine still had not seen the request cancelled: it is generating for nobody (pass the request's context to Submit)")
		}
	})
	t.Run("stop_sequence", func(t *testing.T) {
		before, sentBefore := eng.cancels(), eng.sentTokens()
		body := `{"model":"tinyqwen-chat","stop":"capital","messages":[{"role":"user","content":"hi"}]}`
		resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		text := readAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, show(text))
		}
		if !waitCancels(before + 1) {
			t.Errorf("a stop sequence ended the reply, but the engine went on generating (cancel the request's context when the reply is over)")
		}
		// The handler may have one token in hand when it cancels.
		w := eng.expect(t, len(eng.script), []string{"capital"})
		if n := eng.sentTokens() - sentBefore; n > w.completion+1 {
			t.Errorf("the stop sequence is complete after %d tokens, but the handler read %d of the engine's tokens: stop reading, and cancel the request, as soon as a stop sequence is found", w.completion, n)
		}
	})
}
