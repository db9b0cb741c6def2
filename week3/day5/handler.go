package day5

import "net/http"

// NewHandler serves the OpenAI API over cfg.Engine:
//
//	POST /v1/chat/completions   chat, streamed (server-sent events) or not
//	POST /v1/completions        plain text completion, streamed or not
//	GET  /v1/models             the one model, and GET /v1/models/{id}
//
// A chat's messages are tokenized with Tokenizer.EncodeChat, so text a
// client writes never becomes a control token. Every mistake is answered
// with the OpenAI error object and a 4xx: 400 for a malformed or invalid
// body or a prompt past the context, 404 for another model or path, 405
// for a wrong method, 413 for a body over MaxBodyBytes, 429 with
// Retry-After when the engine's queue is full. A client that goes away
// cancels its request.
func NewHandler(cfg Config) http.Handler {
	// Your code here (W3D5).
	// Route by path and method; for a completion: read the body through
	// http.MaxBytesReader, parse, tokenize, check the context, Submit with
	// the request's context, then turn the engine's tokens into text
	// (Tokenizer.NewStreamDecoder, then your StopBuffer) and write it as
	// one JSON answer or as server-sent events (WriteSSE, WriteSSEDone).
	panic("TODO(W3D5): implement NewHandler")
}
