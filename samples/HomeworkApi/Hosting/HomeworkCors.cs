namespace HomeworkApi.Hosting;

/// <summary>The CORS policy of the homework and account routes: exactly the origins of <c>Homework:Cors:AllowedOrigins</c>.</summary>
internal static class HomeworkCors
{
    public const string PolicyName = "homework-frontend";
}
