package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vikstrous/dataloadgen"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/graph/model"
	"github.com/reservekit/reservekit/server/reqinfo"
)

// PresentError turns errors into GraphQL errors with extensions.code: domain
// errors keep their code, message and field; GraphQL's own parse and
// validation errors become invalid_request; anything else is logged and
// answered as internal_error without details.
func PresentError(log *slog.Logger) graphql.ErrorPresenterFunc {
	present := presenter(log)
	return func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr := present(ctx, err)
		if info := reqinfo.From(ctx); info != nil {
			if code, ok := gqlErr.Extensions["code"].(string); ok {
				info.Error(code)
			}
		}
		return gqlErr
	}
}

func presenter(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr := graphql.DefaultErrorPresenter(ctx, err)
		var ie *model.InputError
		if errors.As(err, &ie) {
			msg, field := ie.Err.Message, inputField(gqlErr.Path)
			if field != "" {
				msg = field + ": " + msg
			}
			gqlErr.Message = msg
			gqlErr.Extensions = map[string]any{"code": ie.Err.Code, "status": ie.Err.Status}
			if field != "" {
				gqlErr.Extensions["field"] = field
			}
			return gqlErr
		}
		if errors.Is(err, dataloadgen.ErrNotFound) {
			// A nested record deleted between the parent's read and its own
			// (a slot deleted right after a booking in it was made).
			field := lastPathField(gqlErr.Path)
			gqlErr.Message = field + " was deleted while the request ran"
			gqlErr.Extensions = map[string]any{"code": db.CodeResourceNotFound, "status": 404, "field": field}
			return gqlErr
		}
		var de *db.Error
		if errors.As(err, &de) {
			field := de.Field
			if field == "" {
				field = lastPathField(gqlErr.Path)
			}
			gqlErr.Message = de.Message
			gqlErr.Extensions = map[string]any{"code": de.Code, "status": de.Status}
			if field != "" {
				gqlErr.Extensions["field"] = field
			}
			return gqlErr
		}
		if code, ok := gqlErr.Extensions["code"].(string); ok {
			switch code {
			case "GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT":
				gqlErr.Extensions["code"] = db.CodeInvalidRequest
				return gqlErr
			}
			return gqlErr
		}
		var unwrapped *gqlerror.Error
		if errors.As(err, &unwrapped) && unwrapped.Rule != "" {
			gqlErr.Extensions = map[string]any{"code": db.CodeInvalidRequest}
			return gqlErr
		}
		log.ErrorContext(ctx, "resolver error", "err", err, "path", gqlErr.Path.String())
		return &gqlerror.Error{
			Message:    "Internal error",
			Path:       gqlErr.Path,
			Extensions: map[string]any{"code": "internal_error"},
		}
	}
}

// inputField names an argument's input field from its path: the root field,
// then the argument, then fields and list indexes within it. The argument
// "input" (a mutation's one input object) is left out, as in domain errors:
// ["createService","input","timeSlots",1,"startTime"] is timeSlots[1].startTime.
func inputField(p ast.Path) string {
	if len(p) < 2 {
		return lastPathField(p)
	}
	rest := p[1:]
	if name, ok := rest[0].(ast.PathName); ok && name == "input" && len(rest) > 1 {
		rest = rest[1:]
	}
	var b strings.Builder
	for _, el := range rest {
		switch el := el.(type) {
		case ast.PathName:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(string(el))
		case ast.PathIndex:
			fmt.Fprintf(&b, "[%d]", int(el))
		}
	}
	return b.String()
}

func lastPathField(p ast.Path) string {
	for i := len(p) - 1; i >= 0; i-- {
		if name, ok := p[i].(ast.PathName); ok {
			return string(name)
		}
	}
	return ""
}
