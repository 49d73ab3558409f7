using System.Text;
using TokenMeter.Metering;

namespace TokenMeter.Tests.Metering;

public sealed class JsonMembersTests
{
    private static List<(string Name, string Value)> Walk(string json, out bool failed)
    {
        var members = JsonMembers.Of(Encoding.UTF8.GetBytes(json));
        var seen = new List<(string, string)>();
        while (members.MoveNext())
        {
            seen.Add((Encoding.UTF8.GetString(members.Name), Encoding.UTF8.GetString(members.Value)));
        }

        failed = members.Failed;
        return seen;
    }

    [Fact]
    public void MoveNext_StepsOverNestedValuesWithBracketsAndQuotesInsideStrings()
    {
        const string Json = """
            { "id" : "x", "choices":[{"message":{"content":"a } ] { [ \" \\ \"model\":\"no\"","n":[1,{"a":[]}]}}],
              "model":"gpt-4o", "n": -1.5e3 ,"ok":true,"none":null, "usage":{"prompt_tokens":3} }
            """;

        var members = Walk(Json, out var failed);

        Assert.False(failed);
        Assert.Equal(["id", "choices", "model", "n", "ok", "none", "usage"], members.Select(m => m.Name));
        Assert.Equal("\"gpt-4o\"", members[2].Value);
        Assert.Equal("-1.5e3", members[3].Value);
        Assert.Equal("""{"prompt_tokens":3}""", members[6].Value);
    }

    [Fact]
    public void MoveNext_NestedValuesOfEveryLengthAndEscapeOffset_AgreeWithTheJsonReader()
    {
        // Brackets, quotes and backslashes at every offset, so that each falls on the edges of the
        // blocks the nested values are stepped over in (escapes across the edge included).
        for (var pad = 0; pad < 140; pad++)
        {
            var filler = new string('x', pad);
            var json = "{\"a\":{\"s\":\"" + filler + "\\\"}]\\\\\",\"t\":[1,{\"u\":\"" + filler + "\\\\\"},[]],\"" + filler + "\":{}},\"b\":[\"" + filler + "]\"],\"c\":2}";
            var expected = new List<(string, string)>();
            using (var document = System.Text.Json.JsonDocument.Parse(json))
            {
                foreach (var member in document.RootElement.EnumerateObject())
                {
                    expected.Add((member.Name, member.Value.GetRawText()));
                }
            }

            var members = Walk(json, out var failed);

            Assert.False(failed);
            Assert.Equal(expected, members);
        }
    }

    [Theory]
    [InlineData("""{"a":{"b":"\\"}""")]
    [InlineData("""{"a":[{"b":"]"}}""")]
    [InlineData("""{"a":{"b":"}""")]
    [InlineData("""{"id":"chatcmpl-broken","choices":[{""")]
    [InlineData("""{"a":"unterminated}""")]
    [InlineData("""{"a" 1}""")]
    [InlineData("""{"a":1 "b":2}""")]
    [InlineData("""[1,2]""")]
    [InlineData("""not json""")]
    public void MoveNext_TextItDoesNotUnderstand_Fails(string json)
    {
        Walk(json, out var failed);

        Assert.True(failed);
    }

    [Fact]
    public void ValueAsString_DecodesEscapes()
    {
        var members = JsonMembers.Of("""{"model":"gpt\u002d4o \"x\"","n":1}"""u8);
        Assert.True(members.MoveNext());
        Assert.Equal("gpt-4o \"x\"", members.ValueAsString());
        Assert.True(members.MoveNext());
        Assert.Null(members.ValueAsString());
    }

    [Theory]
    [InlineData("""{"id":"c","model":"gpt-4o-2024-08-06","choices":[{"message":{"content":"\"usage\":{\"prompt_tokens\":99}"}}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}},"service_tier":"default"}""")]
    [InlineData("""{"type":"response.completed","response":{"model":"o3","usage":{"input_tokens":7,"output_tokens":3,"total_tokens":10}}}""")]
    [InlineData("""{"text":"hi","usage":{"type":"duration","seconds":2.5}}""")]
    [InlineData("""{"model":"m","usage":null}""")]
    public void TryParse_FastWalkAgreesWithTokenByTokenReading(string json)
    {
        var fast = default(ParsedUsage);
        Assert.True(UsageParser.TryParse(Encoding.UTF8.GetBytes(json), ref fast));

        var slow = default(ParsedUsage);
        Assert.True(UsageParser.TryParseTokens(Encoding.UTF8.GetBytes(json), ref slow));

        Assert.Equal(slow, fast);
    }
}
