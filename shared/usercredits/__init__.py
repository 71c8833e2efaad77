"""user-credits: the domain layer shared by every Lambda function (shipped as the DomainLayer)."""
