// Package day5 is Week 3 Day 5: an OpenAI-compatible HTTP server over the
// engine. It parses and checks the requests of /v1/chat/completions and
// /v1/completions, tokenizes them so that nothing a client writes becomes a
// control token, streams the reply as server-sent events, cuts it at stop
// sequences (across token boundaries), and answers every mistake with the
// OpenAI error object.
//
// The engine (serving.Engine), the wire types, the metrics and the chat
// page are provided by internal/serving; NewHandler is what this day builds.
package day5

import "github.com/tinyllm-go/tinyllm/internal/serving"

// The types the handler speaks, declared once in internal/serving.
type (
	// Engine is what the handler needs of an inference engine.
	Engine = serving.Engine
	// ChatRequest is a parsed body of POST /v1/chat/completions.
	ChatRequest = serving.ChatRequest
	// CompletionRequest is a parsed body of POST /v1/completions.
	CompletionRequest = serving.CompletionRequest
	// ChatMessage is one turn of a conversation.
	ChatMessage = serving.ChatMessage
	// APIError is an error in the OpenAI format, with its HTTP status.
	APIError = serving.APIError
	// Config is what NewHandler serves.
	Config = serving.HandlerConfig
)
