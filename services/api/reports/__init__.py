"""The town's monthly report: figures from the database, a PDF, an archive, a webhook event."""
