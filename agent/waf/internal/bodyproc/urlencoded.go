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
	values, truncated := ParseQuery(b, '&', options.ArgumentLimit)
	argsCol := v.ArgsPost()
	for k, vs := range values {
		argsCol.Set(k, vs)
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
