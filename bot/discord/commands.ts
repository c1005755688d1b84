import {
  type APIApplicationCommand,
  ApplicationIntegrationType,
  type ChatInputCommandInteraction,
  InteractionContextType,
  REST,
  type RESTGetCurrentApplicationResult,
  type RESTPostAPIChatInputApplicationCommandsJSONBody,
  Routes,
  SlashCommandBuilder,
} from 'discord.js';

/** Name of the one application command; its subcommands are `SUBCOMMANDS` of `bot/commands/support-command.ts`. */
export const SUPPORT_COMMAND_NAME = 'support';

/**
 * The `/support` chat-input command as registered with Discord (Application Command JSON,
 * https://discord.com/developers/docs/interactions/application-commands#application-command-object),
 * built and validated by discord.js's `SlashCommandBuilder`: subcommands `ask question:<text>`,
 * `status`, `sync [source]`, `retrain`, `help`, usable in servers and in the bot's DMs, for a
 * server-installed app. Who may run `sync`/`retrain` is decided by the bot (admin users and roles),
 * not by `default_member_permissions`, so the same rule holds on Slack and Discord. Visibility, also
 * the same on both: every reply is ephemeral to the invoker except the `ask` answer, which is posted
 * for the channel (its description says so, as Discord shows it in the command picker).
 */
export function supportCommandJson(): RESTPostAPIChatInputApplicationCommandsJSONBody {
  return new SlashCommandBuilder()
    .setName(SUPPORT_COMMAND_NAME)
    .setDescription('Ask the help-center bot, or manage it')
    .setIntegrationTypes(ApplicationIntegrationType.GuildInstall)
    .setContexts(InteractionContextType.Guild, InteractionContextType.BotDM)
    .addSubcommand((s) =>
      s
        .setName('ask')
        .setDescription('Answer a question here; the answer is posted for everyone in the channel')
        .addStringOption((o) =>
          o.setName('question').setDescription('Your question').setRequired(true).setMaxLength(4000),
        ),
    )
    .addSubcommand((s) => s.setName('status').setDescription('What is indexed and running'))
    .addSubcommand((s) =>
      s
        .setName('sync')
        .setDescription('Re-sync the help center now (admins)')
        .addStringOption((o) =>
          o.setName('source').setDescription('Only this source (default: all)').setMaxLength(100),
        ),
    )
    .addSubcommand((s) =>
      s.setName('retrain').setDescription('Retrain the tone/escalation adapter from rated answers (admins)'),
    )
    .addSubcommand((s) => s.setName('help').setDescription('How to use the bot'))
    .toJSON();
}

/**
 * The text `runSupportCommand` parses for a `/support` interaction: the subcommand name followed
 * by its option values (`ask how do I…`, `sync helpcenter`, `status`).
 */
export function supportCommandText(interaction: ChatInputCommandInteraction): string {
  const sub = interaction.options.getSubcommand(false) ?? 'help';
  const args =
    sub === 'ask'
      ? [interaction.options.getString('question') ?? '']
      : sub === 'sync'
        ? [interaction.options.getString('source') ?? '']
        : [];
  return [sub, ...args].join(' ').trim();
}

export interface RegisterDiscordCommandsOptions {
  /** Bot token (`DISCORD_TOKEN`). */
  token: string;
  /** Application id; when unset it is read from `GET /applications/@me` with the token. */
  applicationId?: string;
  /** REST base (`DISCORD_API_URL`, e.g. `http://127.0.0.1:8080/api`); Discord's own when unset. */
  apiUrl?: string;
  /** Register in this guild only (changes show at once; for testing) instead of globally. */
  guildId?: string;
}

export interface RegisteredCommands {
  scope: 'global' | 'guild';
  applicationId: string;
  guildId?: string;
  /** The commands as Discord stored them (with ids and versions). */
  commands: APIApplicationCommand[];
}

/**
 * Registers the bot's application commands (today: `/support`) by bulk-overwriting them with
 * `PUT /applications/{application.id}/commands` (global) or
 * `PUT /applications/{application.id}/guilds/{guild.id}/commands` (one guild), through
 * `@discordjs/rest` (Bulk Overwrite Global/Guild Application Commands,
 * https://discord.com/developers/docs/interactions/application-commands#bulk-overwrite-global-application-commands).
 * Overwriting makes it idempotent: running it again changes nothing, and commands this bot no
 * longer has are removed. Backs `supportbot discord register [--guild ID]`.
 *
 * @throws DiscordAPIError from `@discordjs/rest` when Discord refuses (401 bad token, 403 missing
 *   `applications.commands` scope in the guild, 50035 invalid body); network errors as thrown by fetch.
 */
export async function registerDiscordCommands(
  options: RegisterDiscordCommandsOptions,
): Promise<RegisteredCommands> {
  const rest = new REST(options.apiUrl ? { api: options.apiUrl } : {}).setToken(options.token);
  const applicationId =
    options.applicationId ??
    ((await rest.get(Routes.currentApplication())) as RESTGetCurrentApplicationResult).id;
  const route = options.guildId
    ? Routes.applicationGuildCommands(applicationId, options.guildId)
    : Routes.applicationCommands(applicationId);
  const commands = (await rest.put(route, { body: [supportCommandJson()] })) as APIApplicationCommand[];
  return options.guildId
    ? { scope: 'guild', applicationId, guildId: options.guildId, commands }
    : { scope: 'global', applicationId, commands };
}
