// Copyright 2022 Juan Pablo Tosso and the OWASP Coraza contributors
// SPDX-License-Identifier: Apache-2.0
// Copied from Coraza v3.8.1 internal/bodyprocessors/urlencoded.go; see NOTICE.

package bodyproc

import (
	"io"
	"strconv"

	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
)

type urlencodedBodyProcessor struct {
}

func (*urlencodedBodyProcessor) ProcessRequest(reader io.Reader, v plugintypes.TransactionVariables, options plugintypes.BodyProcessorOptions) error {
	b, err := readAll(reader)
	if err != nil {
		return err
	}

	// ParseQuery itself stops once options.ArgumentLimit total pairs have
	// been parsed (see GHSA-3ww9-vw83-9w5x): the copy below never needs to
	// re-enforce the cap, since values can never hold more than the limit.
	//
	// Not Coraza's loop (for k, vs := range ParseQuery(...) { Set(k, vs) }),
	// on purpose: ARGS_POST is case-insensitive, so Set("q", ...) replaced
	// the values of "Q" (or the other way round, in map order), and
	// "Q=<script>…&q=x" went uninspected most of the time — the bug
	// GHSA-5gj4-9gm7-2fx2 fixed in Coraza's JSON processor, still in its
	// URL-encoded one in v3.8.1. Every pair is added, in order, each under
	// its own key string: Coraza's transformation cache tells values apart
	// by their key's address and index, so values sharing one key string
	// (a repeated name, the empty name) could be given another value's
	// transformation when rules see ARGS in different map orders.
	// TestCaseFoldedNamesKept, agent/waf's TestNoBypassByRepeatedNames.
	pairs, truncated := ParseQueryOrdered(b, '&', options.ArgumentLimit)
	argsCol := v.ArgsPost()
	for _, kv := range pairs {
		argsCol.Add(kv.Key, kv.Value)
	}
	if truncated {
		v.ArgumentsLimitReached().(singleSetter).Set("1")
	}
	v.RequestBody().(singleSetter).Set(b)
	v.RequestBodyLength().(singleSetter).Set(strconv.Itoa(len(b)))
	return nil
}

func (*urlencodedBodyProcessor) ProcessResponse(reader io.Reader, v plugintypes.TransactionVariables, options plugintypes.BodyProcessorOptions) error {
	return nil
}

var (
	_ plugintypes.BodyProcessor = &urlencodedBodyProcessor{}
)
