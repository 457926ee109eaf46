module pyollama/templates/oracle

go 1.23
