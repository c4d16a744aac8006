// Package fargate models an Amazon ECS task definition and turns it into a
// protected one: every app container starts under the taskguard defender's
// launcher, and a taskguard-defender sidecar container is appended.
//
// The model round-trips: fields taskguard does not know are kept as they
// were, in their order, so the output registers with
// `aws ecs register-task-definition --cli-input-json` exactly as the input
// would have, plus the protection. DescribeTaskDefinition output is accepted
// too; its read-only fields are dropped.
//
// The console serves this transform at /api/v1/defenders/fargate.json and the
// CLI runs it offline (`taskguard task protect`).
package fargate
