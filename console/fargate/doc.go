// Package fargate models an Amazon ECS task definition and turns it into a
// protected one: every app container starts under the taskguard defender's
// launcher, and a taskguard-defender sidecar container is appended.
//
// The model round-trips: fields taskguard does not know are kept as they
// were, in their order (null members are dropped, as ECS reads them as
// absent and the AWS CLI refuses them). DescribeTaskDefinition output is
// accepted too; its read-only fields are dropped. Before it is returned, a
// protected task is checked against the ECS RegisterTaskDefinition input
// model (botocore's, embedded: Model, TaskDefinition.Validate) and for a start
// order ECS can satisfy (TaskDefinition.StartOrder), so it registers with
// `aws ecs register-task-definition --cli-input-json` as is.
//
// Infrastructure containers (a FireLens log router, the proxyConfiguration
// container, images the caller lists) are left untouched unless included by
// name; Report says what was protected and why the rest was not.
//
// The console serves this transform at /api/v1/defenders/fargate.json and the
// CLI runs it offline (`taskguard task protect`). docs/protect.md is the
// reference.
package fargate
